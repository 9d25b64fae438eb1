"""Phi-3 (`model_type: phi3`): the Llama layer read through split views of the fused
projections (`qkv_proj` rows `[q | k | v]`, `gate_up_proj` rows `[gate | up]`); every layer
keeps the sliding window when `sliding_window` is set; `longrope` (spelled `su`/`yarn` in
older configs) reads the factor table the build's kv_cache_len chooses.

```mlir
%q = tfm.linear %h, %wq : ...        // %wq: the view model.layers.0.self_attn.q_proj.weight
%qr = tfm.rope %q, %indices, %short {..., scaling = "longrope", mscale = 1.19 : f64} : ...
%a = tfm.attention %qr, %kr, %v, %K_cache, %V_cache, %indices, %mask {..., sliding_window = 2047 : i64} : ...
```
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from axc.errors import AxcError
from axc.frontend.families import llama
from axc.frontend.families.tensors import View, rows
from axc.frontend.model_config import ModelConfig


def configure(raw: dict[str, Any], values: dict[str, Any]) -> None:
    window = raw.get("sliding_window") or 0
    if not isinstance(window, int) or isinstance(window, bool) or window < 0:
        raise AxcError(f"sliding_window={window!r} in the config of {values['model_name']} must be a positive integer or null")
    values["sliding_windows"] = (window,) * values["num_hidden_layers"] if window else ()


def views(c: ModelConfig) -> dict[str, View]:
    hidden, q, kv, inter = c.hidden_size, c.num_attention_heads * c.head_dim, c.kv_dim, c.intermediate_size
    result: dict[str, View] = {}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        qkv, gate_up = p + "self_attn.qkv_proj.weight", p + "mlp.gate_up_proj.weight"
        fused = q + 2 * kv
        result[p + "self_attn.q_proj.weight"] = rows(qkv, 0, q, fused, hidden)
        result[p + "self_attn.k_proj.weight"] = rows(qkv, q, q + kv, fused, hidden)
        result[p + "self_attn.v_proj.weight"] = rows(qkv, q + kv, fused, fused, hidden)
        result[p + "mlp.gate_proj.weight"] = rows(gate_up, 0, inter, 2 * inter, hidden)
        result[p + "mlp.up_proj.weight"] = rows(gate_up, inter, 2 * inter, 2 * inter, hidden)
    return result


PHI3 = replace(
    llama.LLAMA,
    model_types=("phi3",),
    configure=configure,
    views=views,
    reference="Phi3ForCausalLM",
    tiny=dict(
        llama.TINY,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=5,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        original_max_position_embeddings=64,
        rope_parameters={
            "rope_type": "longrope",
            "rope_theta": 1e4,
            "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.1, 3.8],
            "long_factor": [2.0, 2.2, 2.6, 3.2, 4.0, 5.0, 6.2, 7.6],
        },
    ),
    tokenizer_types={"phi3": "Phi3"},
)
