"""The build's pass pipeline, defined once.

`axc-llm-build` runs it (quantization first, on the symbolic layers; then the rest), its log
and `build_report.json` print it as one `axc-opt -p` argument, docs/pipeline.md shows it (a
test checks the text there) and the target-level tests build their modules with it.

```python
stages = llm_pipeline(chip="AX650", kv_cache_len=1023, prefill_len=128, last_kv_cache_len=(128, 256))
pipeline_text(stages)
# quantize-weights{post-weight-type=s8 chip=AX650},specialize-groups{kv-cache-len=1023
#   prefill-len=128 last-kv-cache-len=128,256},set-activation-type{hidden=bf16 chip=AX650},
#   tile{target=AX650 npu-mode=NPU1},fuse,double-buffer,allocate-ocm,lower-to-ax650
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from xdsl.passes import ModulePass

from axc.passes.allocate_ocm import AllocateOcm
from axc.passes.double_buffer import DoubleBuffer
from axc.passes.fuse import Fuse
from axc.passes.lower_to_ax620e import LowerToAx620e
from axc.passes.lower_to_ax650 import LowerToAx650
from axc.passes.post_topk import PostTopk
from axc.passes.quantize_weights import QuantizeWeights
from axc.passes.set_activation_type import SetActivationType
from axc.passes.specialize_groups import SpecializeGroups
from axc.passes.tile import Tile
from axc.targets import get_target


def llm_pipeline(
    *,
    chip: str,
    kv_cache_len: int,
    prefill_len: int,
    last_kv_cache_len: tuple[int, ...] = (),
    npu_mode: str = "NPU1",
    weight_type: str | None = None,
    post_weight_type: str = "s8",
    hidden: str = "bf16",
    compute: str | None = None,
    post_topk: int = 0,
    float_matmul_on_conv: bool = False,
) -> list[ModulePass]:
    """tfm level → `<chip>.model` ops, in the order the build runs them
    (`float_matmul_on_conv`: AX650's FLOAT_MATMUL_USE_CONV_EU=1)."""
    family = get_target(chip, npu_mode).family
    stages: list[ModulePass] = [
        QuantizeWeights(weight_type=weight_type, post_weight_type=post_weight_type, chip=chip),
        SpecializeGroups(kv_cache_len=kv_cache_len, prefill_len=prefill_len, last_kv_cache_len=last_kv_cache_len),
        SetActivationType(hidden=hidden, compute=compute, chip=chip),
    ]
    if post_topk:
        stages.append(PostTopk(k=post_topk))
    lower = LowerToAx650(float_matmul_use_conv_eu=float_matmul_on_conv) if family == "AX650" else LowerToAx620e()
    return [*stages, Tile(target=chip, npu_mode=npu_mode), Fuse(), DoubleBuffer(), AllocateOcm(), lower]


def stage(stages: Sequence[ModulePass], kind: type[ModulePass]) -> ModulePass:
    """The one stage of `stages` that is a `kind` pass."""
    (found,) = (p for p in stages if isinstance(p, kind))
    return found


def until(stages: Sequence[ModulePass], kind: type[ModulePass] | tuple[type[ModulePass], ...]) -> list[ModulePass]:
    """The stages before the first `kind` pass (e.g. the quant level: `until(s, Tile)`)."""
    return list(stages[: next(i for i, p in enumerate(stages) if isinstance(p, kind))])


def _option(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def spec(p: ModulePass) -> str:
    """`p` as an `axc-opt -p` element: its name and every option that is set (not None, 0,
    false or empty), so the text names the chip and types even where they are defaults."""
    options = [
        f"{f.name.replace('_', '-')}={_option(value)}"
        for f in dataclasses.fields(p)
        if (value := getattr(p, f.name)) not in (None, 0, False, (), "")
    ]
    return f"{p.name}{{{' '.join(options)}}}" if options else p.name


def pipeline_text(stages: Sequence[ModulePass]) -> str:
    """The whole pipeline as one `axc-opt -p` argument."""
    return ",".join(spec(p) for p in stages)
