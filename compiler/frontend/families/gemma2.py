"""Gemma2 (`model_type: gemma2`): four RMSNorms per layer (two on the branch outputs), tanh
soft-capping of the attention scores (before the mask) and of the logits, the score scale
from `query_pre_attn_scalar`, a `gelu_pytorch_tanh` gated MLP, sliding-window layers
(`layer_types`, the window enforced inside the layer) and the embedding times √hidden.

Import-time algebra (views): every norm weight `w` is served as `1 + w` in fp32 (exact:
transformers also adds in fp32); the embedding rows the runtime looks up are served times
√hidden (computed in fp32, stored in the table's dtype: transformers' bf16 run rounds the
normaliser itself to bf16, its fp32 run does not), and the lm_head reads the unscaled table
under `lm_head.weight`, so the model builds untied.

Precision: its post-norms give every branch full weight in the residual stream, so bf16
activations between ops cost it more than bf16 weights do; bf16/fp16-weight builds keep
fp32 between ops (`compute_type`), and only the runtime's tensors are bf16.

```mlir
%a = tfm.attention %qr, %kr, %v, %K_cache, %V_cache, %indices, %mask {..., scale = 0.204 : f64, softcap = 50.0 : f64, sliding_window = 4096 : i64}
%o = tfm.rms_norm %attn_out, %w_post_attn {eps = 1.0e-06 : f64}    // on the branch, then the residual add
%l = tfm.softcap %logits {cap = 30.0 : f64}
```
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from axc.errors import AxcError
from axc.frontend.families import llama
from axc.frontend.families.blocks import Builder, attention, gated_mlp, qkv, rope, softcap
from axc.frontend.families.tensors import EMBED, FINAL_NORM, LM_HEAD, View, plus_one, rename, scaled, vector
from axc.frontend.model_config import ModelConfig

NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")
LAYER_TYPES = ("sliding_attention", "full_attention")


def configure(raw: dict[str, Any], values: dict[str, Any]) -> None:
    layers = values["num_hidden_layers"]
    types = raw.get("layer_types") or [LAYER_TYPES[i % 2] for i in range(layers)]
    window = raw.get("sliding_window") or 0
    if (
        not isinstance(types, list)
        or len(types) != layers
        or any(kind not in LAYER_TYPES for kind in types)
        or not isinstance(window, int)
        or window < 0
    ):
        raise AxcError(
            f"layer_types / sliding_window of {values['model_name']}: need {layers} entries of "
            f"{' or '.join(LAYER_TYPES)} and a positive window, got {types!r} / {window!r}; fix the config"
        )
    if raw.get("use_bidirectional_attention"):
        raise AxcError(f"use_bidirectional_attention in the config of {values['model_name']} is not supported (a decoder LLM is causal)")
    values["sliding_windows"] = tuple(window if kind == "sliding_attention" else 0 for kind in types)
    values["attention_softcap"] = float(raw.get("attn_logit_softcapping") or 0.0)
    values["final_softcap"] = float(raw.get("final_logit_softcapping") or 0.0)
    values["attention_scale"] = float(raw.get("query_pre_attn_scalar") or values["head_dim"]) ** -0.5
    values["hidden_act"] = str(raw.get("hidden_activation") or raw.get("hidden_act") or "gelu_pytorch_tanh")
    values["embedding_scale"] = math.sqrt(values["hidden_size"])
    values["lm_head_from_embedding"] = bool(values.get("tie_word_embeddings", True))
    values["tie_word_embeddings"] = False  # the lm_head is served as its own (unscaled) view


def views(c: ModelConfig) -> dict[str, View]:
    hidden = (c.hidden_size,)
    result = {
        key: plus_one(key, hidden)
        for key in [f"model.layers.{i}.{norm}.weight" for i in range(c.num_hidden_layers) for norm in NORMS] + [FINAL_NORM]
    }
    table = (c.vocab_size, c.hidden_size)
    result[EMBED] = scaled(EMBED, table, c.embedding_scale)
    if c.lm_head_from_embedding:
        result[LM_HEAD] = rename(EMBED, table)
    return result


def layer(b: Builder) -> None:
    c = b.config
    x = b.input
    q, k, v = qkv(b, b.rms_norm(x, "input_layernorm.weight"))
    q = rope(b, q, heads=c.num_attention_heads)
    k = rope(b, k, heads=c.num_key_value_heads)
    attn = b.linear(attention(b, q, k, v), "self_attn.o_proj")
    x = b.residual(x, b.rms_norm(attn, "post_attention_layernorm.weight"))
    mlp = gated_mlp(b, b.rms_norm(x, "pre_feedforward_layernorm.weight"))
    b.output(k, v, b.residual(x, b.rms_norm(mlp, "post_feedforward_layernorm.weight")))


def post(b: Builder) -> None:
    assert b.head is not None
    logits = b.project(b.rms_norm(b.input, FINAL_NORM), b.head, None)
    b.output(softcap(b, logits, b.config.final_softcap))


GEMMA2 = replace(
    llama.LLAMA,
    model_types=("gemma2",),
    layer_tensors=llama.layer_tensors() + tuple(vector(f"{norm}.weight", llama.hidden, llama.HIDDEN) for norm in NORMS[2:]),
    layer=layer,
    post=post,
    configure=configure,
    views=views,
    reference="Gemma2ForCausalLM",
    tiny=dict(
        llama.TINY,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=24,
        sliding_window=4,
        attn_logit_softcapping=5.0,
        final_logit_softcapping=3.0,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    ),
    compute_type="fp32",
    tokenizer_types={"gemma2": "Gemma2"},
)
