"""MiniCPM 1/2/4 (`model_type: minicpm`, remote code): the Llama layer with three muP
scalars, all folded into weights at import (views, computed in fp32 and stored in the
weights' dtype): the embedding rows the runtime looks up times `scale_emb`, `o_proj` and
`down_proj` times `scale_depth / √num_hidden_layers` (the residual branches), the lm_head
times `dim_model_base / hidden_size` (the logits' divisor); a tied model gets its lm_head as
a view of the unscaled table, so it builds untied. MiniCPM's LongRoPE picks its factor
table once, from `max_position_embeddings` (long iff it exceeds the original context), with
cos/sin × √(1 + ln(max / original) / ln original).

```mlir
%o = tfm.linear %a, %wo : ...     // %wo: o_proj.weight × scale_depth/√L, a view
%q = tfm.rope %q, %indices, %ext {scaling = "longrope", mscale = 1.19 : f64, ...} : ...
```
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from axc.errors import AxcError
from axc.frontend.families import llama
from axc.frontend.families.tensors import EMBED, LM_HEAD, View, scaled
from axc.frontend.model_config import ModelConfig

SCALARS = ("scale_emb", "scale_depth", "dim_model_base")


def configure(raw: dict[str, Any], values: dict[str, Any]) -> None:
    """The muP scalars (each a positive number; absent: no scaling) and MiniCPM's own
    LongRoPE cos/sin factor, from the context ratio whatever `factor` says."""
    found: dict[str, float] = {}
    for key in SCALARS:
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise AxcError(f"{key}={value!r} in the config of {values['model_name']} must be a positive number; fix the config")
        found[key] = float(value)
    layers, hidden = values["num_hidden_layers"], values["hidden_size"]
    values["embedding_scale"] = float(found.get("scale_emb", 1.0))
    values["residual_scale"] = float(found.get("scale_depth", math.sqrt(layers))) / math.sqrt(layers)
    values["logit_scale"] = float(found.get("dim_model_base", hidden)) / hidden
    values["lm_head_from_embedding"] = bool(values.get("tie_word_embeddings", False))
    values["tie_word_embeddings"] = False  # the lm_head is served as its own view
    rope = values["rope_scaling"]
    if rope.kind == "longrope":
        original = rope.original_max_position_embeddings or values["max_position_embeddings"]
        ratio = values["max_position_embeddings"] / original
        mscale = math.sqrt(1 + math.log(ratio) / math.log(original)) if ratio > 1 and original > 1 else 1.0
        values["rope_scaling"] = replace(rope, mscale=mscale)


def views(c: ModelConfig) -> dict[str, View]:
    hidden, q, inter = c.hidden_size, c.num_attention_heads * c.head_dim, c.intermediate_size
    result: dict[str, View] = {}
    for i in range(c.num_hidden_layers):
        o, down = f"model.layers.{i}.self_attn.o_proj.weight", f"model.layers.{i}.mlp.down_proj.weight"
        result[o] = scaled(o, (hidden, q), c.residual_scale)
        result[down] = scaled(down, (hidden, inter), c.residual_scale)
    table = (c.vocab_size, hidden)
    result[EMBED] = scaled(EMBED, table, c.embedding_scale)
    result[LM_HEAD] = scaled(EMBED if c.lm_head_from_embedding else LM_HEAD, table, c.logit_scale)
    return result


MINICPM = replace(
    llama.LLAMA,
    model_types=("minicpm",),
    configure=configure,
    views=views,
    longrope_from_context=False,
    reference="LlamaForCausalLM",
    tiny=dict(
        llama.TINY,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=24,
        tie_word_embeddings=True,
        rope_theta=1e4,
        scale_emb=4.0,
        scale_depth=1.4,
        dim_model_base=16,
        rope_scaling={
            "rope_type": "longrope",
            "short_factor": [1.0, 1.2, 1.5, 2.0, 2.7, 3.5, 4.5, 6.0, 7.0, 8.0, 9.0, 10.0],
            "long_factor": [1.5, 1.8, 2.2, 3.0, 4.0, 5.2, 6.7, 9.0, 10.0, 11.0, 12.0, 13.0],
            "original_max_position_embeddings": 16,
        },
    ),
)
