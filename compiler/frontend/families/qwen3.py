"""Qwen3 (`model_type: qwen3`): the Llama layer plus an RMSNorm over each head of q and k,
before RoPE; no q/k/v bias by default; `head_dim` may differ from hidden / heads.

```mlir
%q = tfm.linear %h, %wq : (tensor<1x?x1024xf32>, tensor<2048x1024xbf16>) -> tensor<1x?x2048xf32>
%qn = tfm.head_norm %q, %wqn {head_dim = 128 : i64, eps = 1.0e-06 : f64} : ...   // k alike
%qr = tfm.rope %qn, %indices {num_heads = 16 : i64, head_dim = 128 : i64, ...} : ...
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from axc.frontend.families import llama
from axc.frontend.families.blocks import Builder, attention, gated_mlp, head_norm, qkv, rope
from axc.frontend.families.tensors import Tensor, vector
from axc.frontend.model_config import ModelConfig


def head_dim(c: ModelConfig) -> int:
    return c.head_dim


def use_qk_norm(c: ModelConfig) -> bool:
    return c.use_qk_norm


def qk_norm_layer(q_norm: str, k_norm: str) -> Callable[[Builder], None]:
    """The Llama layer with per-head q/k norms (weights `q_norm`, `k_norm`) before or
    after RoPE, as the config says (`use_qk_norm`, `qk_norm_after_rope`)."""

    def layer(b: Builder) -> None:
        c = b.config
        x = b.input
        q, k, v = qkv(b, b.rms_norm(x, "input_layernorm.weight"))
        if c.use_qk_norm and not c.qk_norm_after_rope:
            q, k = head_norm(b, q, q_norm), head_norm(b, k, k_norm)
        q = rope(b, q, heads=c.num_attention_heads)
        k = rope(b, k, heads=c.num_key_value_heads)
        if c.use_qk_norm and c.qk_norm_after_rope:
            q, k = head_norm(b, q, q_norm), head_norm(b, k, k_norm)
        x = b.residual(x, b.linear(attention(b, q, k, v), "self_attn.o_proj"))
        b.output(k, v, b.residual(x, gated_mlp(b, b.rms_norm(x, "post_attention_layernorm.weight"))))

    return layer


def qk_norm_tensors(q_norm: str, k_norm: str) -> tuple[Tensor, ...]:
    return (
        vector(q_norm, head_dim, ("head_dim",), when=use_qk_norm),
        vector(k_norm, head_dim, ("head_dim",), when=use_qk_norm),
    )


Q_NORM, K_NORM = "self_attn.q_norm.weight", "self_attn.k_norm.weight"

QWEN3 = replace(
    llama.LLAMA,
    model_types=("qwen3",),
    layer_tensors=llama.layer_tensors() + qk_norm_tensors(Q_NORM, K_NORM),
    layer=qk_norm_layer(Q_NORM, K_NORM),
    reference="Qwen3ForCausalLM",
    tiny=dict(
        llama.TINY,
        num_hidden_layers=3,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=16,
        tie_word_embeddings=False,
        rope_theta=1e6,
    ),
    qk_norm="before_rope",
    tokenizer_types={"qwen3": "Qwen3"},
)
