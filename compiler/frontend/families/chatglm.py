"""ChatGLM2/3 (`model_type: chatglm`, remote code): the Llama layer read through views of
the checkpoint's own names (`transformer.encoder.layers.N.*`). The fused
`query_key_value` (rows `[q | k | v]`, with bias) and `dense_h_to_4h` (rows `[gate | up]`)
are split; ChatGLM's rotary is interleaved (pairs `(x[2i], x[2i+1])`) on the first half of
each head, so each head's rotary rows of q and k (weights and biases) are permuted to
`[0, 2, 4, …, 1, 3, 5, …]`, which turns it into the half-split partial RoPE exactly
(q·k is unchanged, as q and k get the same permutation; the K cache holds permuted keys).
θ = 10000 × `rope_ratio`.

```mlir
%q = tfm.linear %h, %wq, %bq : ...   // %wq: rows of query_key_value, rotary rows permuted
%qr = tfm.rope %q, %indices {num_heads = 32 : i64, head_dim = 128 : i64, rotary_dim = 64 : i64, theta = 5.0e+05 : f64, ...} : ...
```
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from axc.errors import AxcError
from axc.frontend.families import llama
from axc.frontend.families.tensors import EMBED, FINAL_NORM, LM_HEAD, View, never, rename, rows
from axc.frontend.model_config import ModelConfig

KEYS = {
    "num_layers": "num_hidden_layers",
    "kv_channels": "head_dim",
    "multi_query_group_num": "num_key_value_heads",
    "ffn_hidden_size": "intermediate_size",
    "padded_vocab_size": "vocab_size",
    "seq_length": "max_position_embeddings",
    "layernorm_epsilon": "rms_norm_eps",
    "add_qkv_bias": "attention_bias",
}
"""ChatGLM's `config.json` keys → the canonical ones."""
UNSUPPORTED = {
    "rmsnorm": (False, "LayerNorm layers (rmsnorm: false)"),
    "add_bias_linear": (True, "biases on every linear (add_bias_linear: true)"),
    "post_layer_norm": (False, "no final norm (post_layer_norm: false)"),
    "apply_residual_connection_post_layernorm": (True, "residuals taken after the norm"),
}
"""Settings the ChatGLM2/3 checkpoints never use: the value refused and what it means."""
STORED = "transformer.encoder.layers.{}."


def config_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """The canonical keys from ChatGLM's own; the kv heads only with `multi_query_attention`."""
    values = {canonical: raw[key] for key, canonical in KEYS.items() if raw.get(key) is not None}
    if not raw.get("multi_query_attention", False):
        values.pop("num_key_value_heads", None)
    return values


def configure(raw: dict[str, Any], values: dict[str, Any]) -> None:
    for key, (refused, meaning) in UNSUPPORTED.items():
        if raw.get(key, not refused) == refused:
            raise AxcError(
                f"{values['model_name']}: chatglm with {meaning} is not supported "
                "(ChatGLM2/3 checkpoints are RMSNorm, qkv-bias-only, pre-norm); check the config"
            )
    ratio = raw.get("rope_ratio", 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        raise AxcError(f"rope_ratio={ratio!r} in the config of {values['model_name']} must be a positive number")
    values["rope_theta"] = values["rope_theta"] * float(ratio)
    values["rope_partial_factor"] = 0.5
    values["hidden_act"] = "silu"
    values["tie_word_embeddings"] = False


def rotary_order(heads: int, head_dim: int, rotary_dim: int) -> np.ndarray:
    """Per head, the rotary rows even-first (`[0, 2, …, 1, 3, …]`), the rest in place."""
    head = np.concatenate([np.arange(0, rotary_dim, 2), np.arange(1, rotary_dim, 2), np.arange(rotary_dim, head_dim)])
    return np.concatenate([h * head_dim + head for h in range(heads)])


def permuted_rows(source: str, start: int, order: np.ndarray, total: int, width: int | None) -> View:
    """Rows `start + order` of a fused `[total, width]` weight (a `[total]` bias when
    `width` is None)."""
    tail = () if width is None else (width,)
    return View((source,), (len(order), *tail), lambda x: x[start:][order], source_shape=(total, *tail))


def views(c: ModelConfig) -> dict[str, View]:
    hidden, d, inter = c.hidden_size, c.head_dim, c.intermediate_size
    q, kv = c.num_attention_heads * d, c.kv_dim
    fused = q + 2 * kv
    q_order = rotary_order(c.num_attention_heads, d, c.rotary_dim)
    k_order = rotary_order(c.num_key_value_heads, d, c.rotary_dim)
    result: dict[str, View] = {}
    for i in range(c.num_hidden_layers):
        p, s = f"model.layers.{i}.", STORED.format(i)
        qkv = s + "self_attention.query_key_value."
        for suffix, width in (("weight", hidden), *((("bias", None),) if c.attention_bias else ())):
            result[f"{p}self_attn.q_proj.{suffix}"] = permuted_rows(qkv + suffix, 0, q_order, fused, width)
            result[f"{p}self_attn.k_proj.{suffix}"] = permuted_rows(qkv + suffix, q, k_order, fused, width)
            result[f"{p}self_attn.v_proj.{suffix}"] = rows(qkv + suffix, q + kv, fused, fused, width)
        result[p + "self_attn.o_proj.weight"] = rename(s + "self_attention.dense.weight", (hidden, q))
        gate_up = s + "mlp.dense_h_to_4h.weight"
        result[p + "mlp.gate_proj.weight"] = rows(gate_up, 0, inter, 2 * inter, hidden)
        result[p + "mlp.up_proj.weight"] = rows(gate_up, inter, 2 * inter, 2 * inter, hidden)
        result[p + "mlp.down_proj.weight"] = rename(s + "mlp.dense_4h_to_h.weight", (hidden, inter))
        for norm in ("input_layernorm.weight", "post_attention_layernorm.weight"):
            result[p + norm] = rename(s + norm, (hidden,))
    table = (c.vocab_size, hidden)
    result[EMBED] = rename("transformer.embedding.word_embeddings.weight", table)
    result[FINAL_NORM] = rename("transformer.encoder.final_layernorm.weight", (hidden,))
    result[LM_HEAD] = rename("transformer.output_layer.weight", table)
    return result


CHATGLM = replace(
    llama.LLAMA,
    model_types=("chatglm",),
    layer_tensors=llama.layer_tensors(o_bias=never),
    config_keys=config_keys,
    configure=configure,
    views=views,
    stored_layer_prefix=STORED,
    reference="GlmForCausalLM",
    tiny=dict(
        padded_vocab_size=128,
        hidden_size=64,
        num_layers=3,
        num_attention_heads=6,
        kv_channels=16,
        multi_query_attention=True,
        multi_query_group_num=2,
        ffn_hidden_size=96,
        seq_length=256,
        layernorm_epsilon=1e-5,
        add_qkv_bias=True,
        rope_ratio=50.0,
    ),
)
