"""Phi-2 (`model_type: phi`): a parallel block under one LayerNorm with bias,
`x + dense(attn(h)) + fc2(gelu_new(fc1(h)))` with `h = LayerNorm(x)`; biases on
q/k/v/dense/fc1/fc2 and on the lm_head; partial rotary (`partial_rotary_factor`); a final
LayerNorm with bias (`model.final_layernorm`, served as `model.norm`).

```mlir
%h = tfm.layer_norm %input, %w, %b {eps = 1.0e-05 : f64} : ...
%f = tfm.linear %h, %w_fc1, %b_fc1 : ...           // act gelu_tanh, then fc2
%s = tfm.add %attn, %ffn : ...                     // both branches of one norm
%out = tfm.add %s, %input : ...
%logits = tfm.linear %hn, %w_head, %b_head : ...   // @post: the lm_head's bias
```
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from axc.errors import AxcError
from axc.frontend.families import llama
from axc.frontend.families.blocks import Builder, act, attention, qkv, rope
from axc.frontend.families.tensors import FINAL_NORM, View, always, linear, rename, vector
from axc.frontend.model_config import ModelConfig

FINAL = FINAL_NORM.removesuffix(".weight")
LM_HEAD_BIAS = "lm_head.bias"


def configure(raw: dict[str, Any], values: dict[str, Any]) -> None:
    if raw.get("qk_layernorm"):
        raise AxcError(f"qk_layernorm in the config of {values['model_name']} is not supported yet (Phi-2 has none)")
    values["rms_norm_eps"] = float(raw.get("layer_norm_eps") or 1e-5)
    values["attention_bias"] = values["mlp_bias"] = True


def views(c: ModelConfig) -> dict[str, View]:
    hidden = (c.hidden_size,)
    return {f"{FINAL}.{part}": rename(f"model.final_layernorm.{part}", hidden) for part in ("weight", "bias")}


def layer(b: Builder) -> None:
    c = b.config
    x = b.input
    h = b.layer_norm(x, "input_layernorm")
    q, k, v = qkv(b, h)
    q = rope(b, q, heads=c.num_attention_heads)
    k = rope(b, k, heads=c.num_key_value_heads)
    attn = b.linear(attention(b, q, k, v), "self_attn.dense")
    ffn = b.linear(act(b, b.linear(h, "mlp.fc1")), "mlp.fc2")
    b.output(k, v, b.residual(b.residual(attn, ffn), x))


def post(b: Builder) -> None:
    """The final LayerNorm and the lm_head with its bias (a tied one too: transformers keeps it)."""
    assert b.head is not None
    b.output(b.project(b.layer_norm(b.input, FINAL), b.head, LM_HEAD_BIAS))


PHI = replace(
    llama.LLAMA,
    model_types=("phi",),
    layer_tensors=(
        vector("input_layernorm.weight", llama.hidden, llama.HIDDEN),
        vector("input_layernorm.bias", llama.hidden, llama.HIDDEN),
        linear("self_attn.q_proj", llama.q_dim, llama.hidden, llama.Q, bias=always),
        linear("self_attn.k_proj", llama.kv_dim, llama.hidden, llama.KV, bias=always),
        linear("self_attn.v_proj", llama.kv_dim, llama.hidden, llama.KV, bias=always),
        linear("self_attn.dense", llama.hidden, llama.q_dim, llama.Q, bias=always),
        linear("mlp.fc1", llama.intermediate, llama.hidden, llama.MLP, bias=always),
        linear("mlp.fc2", llama.hidden, llama.intermediate, llama.MLP, bias=always),
    ),
    post_tensors=(
        vector(f"{FINAL}.bias", llama.hidden, llama.HIDDEN),
        vector(LM_HEAD_BIAS, lambda c: c.vocab_size, ("vocab_size",)),
    ),
    layer=layer,
    post=post,
    configure=configure,
    views=views,
    attention_bias=True,
    norm_type="layer_norm",
    reference="PhiForCausalLM",
    tiny=dict(
        llama.TINY,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        partial_rotary_factor=0.4,
        hidden_act="gelu_new",
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    ),
    tokenizer_types={"phi": "Phi"},
)
