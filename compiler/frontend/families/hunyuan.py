"""HunYuan dense (`model_type: hunyuan_v1_dense`, HY-MT1.5): Qwen3's layer with the per-head
q/k norms after RoPE (`query_layernorm`, `key_layernorm`; off when `use_qk_norm` is false),
and NTK-alpha RoPE (`rope_scaling {type: dynamic, alpha}`) folded into the base:
θ' = θ·alpha^(d/(d−2)), a static default RoPE.

```mlir
%qr = tfm.rope %q, %indices {num_heads = 16 : i64, head_dim = 128 : i64, theta = 1.1158839e+07 : f64, ...} : ...
%qn = tfm.head_norm %qr, %wqn {head_dim = 128 : i64, eps = 1.0e-05 : f64} : ...   // k alike
```
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from axc.errors import AxcError
from axc.frontend.families import llama, qwen3


def configure(raw: dict[str, Any], values: dict[str, Any]) -> None:
    """`use_qk_norm` (default true, as transformers' class always normalises) and the
    alpha fold, which is exactly transformers' `ntk_alpha` RoPE."""
    values["use_qk_norm"] = bool(raw.get("use_qk_norm", True))
    rope = values["rope_scaling"]
    if rope.kind != "dynamic" or not rope.alpha:
        return
    d = values["head_dim"]
    if rope.alpha < 0 or d <= 2:
        raise AxcError(
            f"rope_scaling alpha={rope.alpha} with head_dim={d} in the config of {values['model_name']} cannot be folded "
            "into rope_theta (needs alpha > 0 and head_dim > 2); fix the config"
        )
    values["rope_theta"] = values["rope_theta"] * rope.alpha ** (d / (d - 2))
    values["rope_scaling"] = replace(rope, kind="default")


Q_NORM, K_NORM = "self_attn.query_layernorm.weight", "self_attn.key_layernorm.weight"

HUNYUAN = replace(
    qwen3.QWEN3,
    model_types=("hunyuan_v1_dense",),
    layer_tensors=llama.layer_tensors() + qwen3.qk_norm_tensors(Q_NORM, K_NORM),
    layer=qwen3.qk_norm_layer(Q_NORM, K_NORM),
    reference="HunYuanDenseV1ForCausalLM",
    tiny=dict(
        qwen3.QWEN3.tiny,
        tie_word_embeddings=True,
        rope_theta=1e4,
        rope_scaling={"type": "dynamic", "alpha": 1000.0, "factor": 1.0},
        use_qk_norm=True,
    ),
    qk_norm="after_rope",
    configure=configure,
    tokenizer_types={"hunyuan_v1_dense": "HunYuan"},
)
