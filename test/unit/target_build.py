"""Helpers of the target-level tests: tiny models through the whole pipeline to `.axmodel`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from axc.binding import store_for, write_created_params
from axc.dialects import make_context
from axc.frontend.hf_import import import_hf
from axc.runtime_contract import MASKED
from axc.llm_build.pipeline import llm_pipeline, until
from axc.passes.lower_to_ax620e import LowerToAx620e
from axc.passes.lower_to_ax650 import LowerToAx650
from axc.passes.tile import Tile

KV, PREFILL, LASTS = 24, 8, (8, 16)
SMALL_OCM = 48 * 1024
LOWER = {"AX650": LowerToAx650, "AX620E": LowerToAx620e}


def npu_module(
    model_dir: Path, params: Path, weight_type: str, target: str, npu_mode: str = "NPU1", hidden: str = "fp32", ocm: int = 0
) -> ModuleOp:
    """The npu level of a tiny model, its created parameters saved to `params`."""
    module = import_hf(model_dir)
    ctx = make_context()
    stages = llm_pipeline(
        chip=target, npu_mode=npu_mode, kv_cache_len=KV, prefill_len=PREFILL, last_kv_cache_len=LASTS,
        weight_type=weight_type, hidden=hidden,
    )
    for p in until(stages, tuple(LOWER.values())):
        (replace(p, ocm_bytes=ocm) if isinstance(p, Tile) else p).apply(ctx, module)
    write_created_params(module, params)
    return module


def lowered(module: ModuleOp) -> ModuleOp:
    """A lowered clone (its parameters come from the same bound files)."""
    target = module.clone()
    family = "AX620E" if target.attributes["axc.target"].data in ("AX620E", "AX630C", "AX620Q") else "AX650"  # type: ignore[union-attr]
    LOWER[family]().apply(make_context(), target)
    store_for(target)
    return target


def group_inputs(function: func.FuncOp, seed: int) -> dict[str, np.ndarray]:
    """Random contract inputs by name: caches, positions, hidden state, a runtime-style mask."""
    rng = np.random.default_rng(seed)
    names = [n.data for n in function.attributes["axc.input_names"].data]  # type: ignore[union-attr]
    args = {}
    for name, type_ in zip(names, function.function_type.inputs.data):
        shape = tuple(type_.get_shape())  # type: ignore[attr-defined]
        if name == "indices":
            args[name] = (5 + np.arange(shape[-1], dtype=np.uint32)).reshape(shape)
        elif name == "mask" and len(shape) == 3:
            tokens, total = shape[1], shape[2]
            history = total - tokens
            mask = np.full(shape, MASKED, np.float32)
            mask[0, :, : max(history - 3, 0)] = 0.0
            mask[0, :, history:][np.tril(np.ones((tokens, tokens), bool))] = 0.0
            args[name] = mask
        else:
            args[name] = rng.standard_normal(shape).astype(np.float32)
    return args


def functions(module: ModuleOp) -> dict[str, func.FuncOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}
