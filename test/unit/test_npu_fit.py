"""Every layer that fits in DDR builds for every target: `tile` chooses tiles that fit the
descriptor's OCM (or a forced smaller one) at real layer widths, and what it builds still
computes what the quant level computes (property-style, over random tiny configurations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from axc.dialects import make_context, npu
from axc.frontend.hf_import import import_hf
from axc.passes.allocate_ocm import AllocateOcm
from axc.passes.double_buffer import DoubleBuffer
from axc.passes.fuse import Fuse
from axc.passes.quantize_weights import QuantizeWeights
from axc.passes.set_activation_type import SetActivationType
from axc.passes.specialize_groups import SpecializeGroups
from axc.passes.tile import Tile
from axc.targets import get_target
from test_npu_tile import max_relative_error, run_all
from tiny_models import write_random_layer

REAL = {
    "qwen3-0.6b": ("llama", dict(hidden_size=1024, intermediate_size=3072, num_attention_heads=16, num_key_value_heads=8, head_dim=128)),
    "qwen2.5-1.5b": ("qwen2", dict(hidden_size=1536, intermediate_size=8960, num_attention_heads=12, num_key_value_heads=2)),
    "llama3.2-1b": ("llama", dict(hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=8, head_dim=64)),
}
"""Decoder layers of published models (Qwen3 as a Llama-shaped layer), vocabulary 256."""
REAL_GROUPS = {1023: (128, 512, 895), 2559: (128, 1024, 2431)}
"""last_kv_cache_len per KV cache length: prefill 128 over no history, one chunk, a middle
and the longest history that fits (h + 128 = kv_cache_len)."""
FORCED_OCM = 64 * 1024


def build(
    model_dir: Path, target: str, ocm: int, kv: int, prefill: int, lasts: tuple[int, ...],
    weight_type: str = "s8", group_size: int | None = None, hidden: str = "bf16",
) -> tuple[ModuleOp, ModuleOp]:
    """(quant level, placed npu level) of a checkpoint."""
    module = import_hf(model_dir)
    ctx = make_context()
    SpecializeGroups(kv_cache_len=kv, prefill_len=prefill, last_kv_cache_len=lasts).apply(ctx, module)
    QuantizeWeights(weight_type=weight_type, group_size=group_size).apply(ctx, module)
    SetActivationType(hidden=hidden).apply(ctx, module)
    lowered = module.clone()
    Tile(target=target, ocm_bytes=ocm).apply(ctx, lowered)
    for p in (Fuse(), DoubleBuffer(), AllocateOcm()):
        p.apply(ctx, lowered)
    lowered.verify()
    return module, lowered


def assert_placed(module: ModuleOp, capacity: int) -> None:
    """Every OCM buffer has an offset inside `capacity`."""
    for function in module.ops:
        if not isinstance(function, func.FuncOp) or "npu.ocm_bytes" not in function.attributes:
            continue
        assert function.attributes["npu.ocm_bytes"].value.data <= capacity  # type: ignore[union-attr]
        for op in function.body.block.ops:
            if isinstance(op, npu.AllocOp) and op.buffer_type.on_chip:
                assert op.offset is not None and op.offset.value.data + op.buffer_type.nbytes <= capacity


@pytest.fixture(scope="module")
def real_layer(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            family, sizes = REAL[name]
            cache[name] = write_random_layer(family, tmp_path_factory.mktemp(name), vocab_size=256, **sizes)
        return cache[name]

    return get


@pytest.mark.parametrize("target, ocm", [("AX620E", 0), ("AX650", 0), ("AX620E", FORCED_OCM)])
@pytest.mark.parametrize("name, kv", [("qwen3-0.6b", 1023), ("qwen3-0.6b", 2559), ("qwen2.5-1.5b", 1023), ("llama3.2-1b", 1023)])
def test_real_layer_widths_fit(real_layer, name: str, kv: int, target: str, ocm: int) -> None:
    _, lowered = build(real_layer(name), target, ocm, kv, 128, REAL_GROUPS[kv])
    assert_placed(lowered, ocm or get_target(target).ocm_bytes_per_core)


def random_config(seed: int) -> dict:
    """A random tiny layer, shape-group set, target, OCM size and weight type."""
    rng = np.random.default_rng(seed)
    family = str(rng.choice(["qwen2", "llama"]))
    kv_heads, group, head_dim = int(rng.choice([1, 2])), int(rng.choice([1, 2, 4])), int(rng.choice([8, 16]))
    heads = kv_heads * group
    sizes = dict(
        hidden_size=heads * head_dim if family == "qwen2" else int(rng.choice([32, 64])),
        intermediate_size=int(rng.choice([48, 96, 160])),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=64,
    )
    if family == "llama":
        sizes["head_dim"] = head_dim
    prefill, kv = int(rng.choice([4, 8])), int(rng.choice([15, 31]))
    weight_type = str(rng.choice(["s8", "s4", "bf16"]))
    return dict(
        family=family, sizes=sizes, kv=kv, prefill=prefill, lasts=(prefill // 2, kv - prefill),
        target=str(rng.choice(["AX620E", "AX650"])), ocm=int(rng.choice([1024, 2048, 4096, 16384, 0])),
        weight_type=weight_type, group_size=int(rng.choice([0, 8])) if weight_type != "bf16" else None,
    )


@pytest.mark.parametrize("seed", range(12))
def test_random_layers_fit_and_match_the_quant_level(tmp_path: Path, seed: int) -> None:
    c = random_config(seed)
    model = write_random_layer(c["family"], tmp_path, seed, **c["sizes"])
    module, lowered = build(
        model, c["target"], c["ocm"], c["kv"], c["prefill"], c["lasts"], c["weight_type"], c["group_size"], hidden="fp32"
    )
    assert_placed(lowered, c["ocm"] or get_target(c["target"]).ocm_bytes_per_core)
    expected, actual, _ = run_all(module, lowered, ["layer_0_g0", "layer_0_g1", "layer_0_g2", "layer_0_g3", "post"])
    assert max_relative_error(expected, actual) <= 1e-5, c
