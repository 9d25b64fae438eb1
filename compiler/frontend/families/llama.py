"""Llama (`model_type: llama`) and Qwen2 (`qwen2`): pre-norm decoder layers with grouped-query
attention, RoPE and a gated MLP. Qwen2 differs only in its q/k/v biases (on by default).

```mlir
%h = tfm.rms_norm %input, %w_in {eps = 1.0e-06 : f64} : ...
%q = tfm.linear %h, %wq, %bq : ...                 // k, v alike
%qr = tfm.rope %q, %indices {num_heads = 4 : i64, ...} : ...
%a = tfm.attention %qr, %kr, %v, %K_cache, %V_cache, %mask {...} : ...
%x = tfm.add %input, %o : ...                      // then rms_norm, gated MLP, add
```
"""

from __future__ import annotations

from dataclasses import replace

from axc.frontend.families.base import Family
from axc.frontend.families.blocks import ROPE_FACTORS, Builder, attention, gated_mlp, qkv, rope
from axc.frontend.families.tensors import FINAL_NORM, Condition, Tensor, linear, never, vector
from axc.frontend.model_config import ModelConfig

HIDDEN = ("hidden_size",)
Q = ("num_attention_heads", "head_dim", "hidden_size")
KV = ("num_key_value_heads", "head_dim", "hidden_size")
MLP = ("intermediate_size", "hidden_size")


def hidden(c: ModelConfig) -> int:
    return c.hidden_size


def q_dim(c: ModelConfig) -> int:
    return c.num_attention_heads * c.head_dim


def kv_dim(c: ModelConfig) -> int:
    return c.kv_dim


def intermediate(c: ModelConfig) -> int:
    return c.intermediate_size


def attention_bias(c: ModelConfig) -> bool:
    return c.attention_bias


def mlp_bias(c: ModelConfig) -> bool:
    return c.mlp_bias


def longrope(c: ModelConfig) -> bool:
    return c.rope_scaling.kind == "longrope"


def half_rotary(c: ModelConfig) -> int:
    return c.rotary_dim // 2


ROPE_TABLES = tuple(
    vector(ROPE_FACTORS.format(kind), half_rotary, ("rope_scaling", "head_dim"), when=longrope) for kind in ("short", "long")
)
"""A longrope's factor tables, beside every layer (views of the config, not stored)."""


def layer_tensors(o_bias: Condition = attention_bias) -> tuple[Tensor, ...]:
    """The Llama layer's tensors; `o_bias` decides `o_proj.bias` (Qwen2 has none)."""
    return (
        vector("input_layernorm.weight", hidden, HIDDEN),
        linear("self_attn.q_proj", q_dim, hidden, Q, bias=attention_bias),
        linear("self_attn.k_proj", kv_dim, hidden, KV, bias=attention_bias),
        linear("self_attn.v_proj", kv_dim, hidden, KV, bias=attention_bias),
        linear("self_attn.o_proj", hidden, q_dim, Q, bias=o_bias),
        vector("post_attention_layernorm.weight", hidden, HIDDEN),
        linear("mlp.gate_proj", intermediate, hidden, MLP, bias=mlp_bias),
        linear("mlp.up_proj", intermediate, hidden, MLP, bias=mlp_bias),
        linear("mlp.down_proj", hidden, intermediate, MLP, bias=mlp_bias),
        *ROPE_TABLES,
    )


def layer(b: Builder) -> None:
    c = b.config
    x = b.input
    q, k, v = qkv(b, b.rms_norm(x, "input_layernorm.weight"))
    q = rope(b, q, heads=c.num_attention_heads)
    k = rope(b, k, heads=c.num_key_value_heads)
    x = b.residual(x, b.linear(attention(b, q, k, v), "self_attn.o_proj"))
    b.output(k, v, b.residual(x, gated_mlp(b, b.rms_norm(x, "post_attention_layernorm.weight"))))


def post(b: Builder) -> None:
    """Final norm and lm_head (the embedding table when the model ties them)."""
    assert b.head is not None
    b.output(b.project(b.rms_norm(b.input, FINAL_NORM), b.head, None))


TINY = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)
"""The shapes of the tests' tiny random models."""

LLAMA = Family(
    model_types=("llama",),
    layer_tensors=layer_tensors(),
    layer=layer,
    post=post,
    reference="LlamaForCausalLM",
    tiny=dict(
        TINY,
        tie_word_embeddings=False,
        rope_theta=5e5,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    ),
)

QWEN2 = replace(
    LLAMA,
    model_types=("qwen2",),
    layer_tensors=layer_tensors(o_bias=never),
    reference="Qwen2ForCausalLM",
    tiny=dict(TINY, tie_word_embeddings=True, rope_theta=1e6),
    attention_bias=True,
)
