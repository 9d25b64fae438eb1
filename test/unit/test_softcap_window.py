"""Soft-capping and in-layer sliding windows on every level: the kernels against an
explicit mask, the npu level against the quant level, and the emitted binary against the
npu level, on a tiny model whose attention ops carry a softcap and a window shorter than
the prompt (and whose `@post` soft-caps the logits)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from axc import kernels
from axc.binding import store_for
from axc.codegen.emit import find_model, to_axmodel
from axc.dialects import make_context, npu, tfm
from axc.frontend.hf_import import import_hf
from axc.interpreters.runner import ModuleRunner
from axc.passes.allocate_ocm import AllocateOcm
from axc.passes.double_buffer import DoubleBuffer
from axc.passes.fuse import Fuse
from axc.passes.quantize_weights import QuantizeWeights
from axc.passes.set_activation_type import SetActivationType
from axc.passes.specialize_groups import SpecializeGroups
from axc.passes.tile import Tile
from axc.binding import write_created_params
from axc.sim.session import AxModelSession

sys.path.insert(0, str(Path(__file__).parent))
from target_build import KV, LASTS, PREFILL, group_inputs, lowered  # noqa: E402

SOFTCAP, WINDOW, FINAL_CAP = 0.5, 3, 0.75
GROUPS = {"layer_0": ["layer_0_g0", "layer_0_g1", "layer_0_g2"], "post": ["post"]}


def test_window_kernel_is_an_explicit_mask() -> None:
    rng = np.random.default_rng(0)
    heads, kv_heads, d, tokens, history = 4, 2, 8, 5, 6
    q = rng.standard_normal((1, tokens, heads * d)).astype(np.float32)
    k, v = (rng.standard_normal((1, tokens, kv_heads * d)).astype(np.float32) for _ in range(2))
    kc, vc = (rng.standard_normal((1, history, kv_heads * d)).astype(np.float32) for _ in range(2))
    positions = history + np.arange(tokens)
    mask = np.zeros((1, tokens, history + tokens), np.float32)
    mask[0, :, history:][~np.tril(np.ones((tokens, tokens), bool))] = -65536.0
    keys = np.concatenate([np.arange(history), positions])
    explicit = mask + np.where(positions[:, None] - keys[None, :] >= WINDOW, -65536.0, 0.0).astype(np.float32)
    args = (q, k, v, kc, vc)
    windowed = kernels.attention(*args, mask, heads, kv_heads, d, 0.3, window=WINDOW, positions=positions[None])
    np.testing.assert_array_equal(windowed, kernels.attention(*args, explicit, heads, kv_heads, d, 0.3))
    assert not np.allclose(windowed, kernels.attention(*args, mask, heads, kv_heads, d, 0.3))
    capped = kernels.attention(*args, mask, heads, kv_heads, d, 0.3, softcap_value=SOFTCAP)
    assert not np.allclose(capped, kernels.attention(*args, mask, heads, kv_heads, d, 0.3))


def add_softcap_and_window(module: ModuleOp) -> ModuleOp:
    """Every attention op soft-capped and windowed on its layer's `indices`; logits capped."""
    for function in module.ops:
        if not isinstance(function, func.FuncOp):
            continue
        for op in list(function.body.walk()):
            if isinstance(op, tfm.AttentionOp):
                props = dict(op.properties)
                props["softcap"] = tfm.float_prop(SOFTCAP)
                props["sliding_window"] = tfm.int_prop(WINDOW)
                new = tfm.AttentionOp.create(
                    operands=[*op.operands[:-1], function.args[2], op.mask], result_types=[op.result.type], properties=props
                )
                op.result.replace_all_uses_with(new.result)
                function.body.block.insert_op_before(new, op)
                function.body.block.erase_op(op)
        if function.sym_name.data == "post":
            ret = function.body.block.last_op
            assert isinstance(ret, func.ReturnOp)
            logits = ret.operands[0]
            cap = tfm.SoftcapOp.create(operands=[logits], result_types=[logits.type], properties={"cap": tfm.float_prop(FINAL_CAP)})
            function.body.block.insert_op_before(cap, ret)
            ret.operands = [cap.result]
    module.verify()
    return module


@pytest.fixture(scope="module")
def quant_module(tiny_model_dir):
    def make(weight_type: str, hidden: str = "fp32") -> ModuleOp:
        module = add_softcap_and_window(import_hf(tiny_model_dir("qwen2")))
        ctx = make_context()
        SpecializeGroups(kv_cache_len=KV, prefill_len=PREFILL, last_kv_cache_len=LASTS).apply(ctx, module)
        QuantizeWeights(weight_type=weight_type).apply(ctx, module)
        SetActivationType(hidden=hidden).apply(ctx, module)
        return module

    return make


def npu_level(result: ModuleOp, target: str, ocm: int, params: Path) -> ModuleOp:
    """`result` (a fresh quant module) lowered in place to allocated npu programs."""
    ctx = make_context()
    Tile(target=target, ocm_bytes=ocm).apply(ctx, result)
    for p in (Fuse(), DoubleBuffer(), AllocateOcm()):
        p.apply(ctx, result)
    result.verify()
    write_created_params(result, params)
    return result


def relative(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.asarray(expected, np.float32)
    return float(np.max(np.abs(expected - actual)) / max(float(np.max(np.abs(expected))), 1e-30))


@pytest.mark.parametrize("weight_type, target, ocm", [("s8", "AX650", 0), ("bf16", "AX620E", 4 * 1024), ("s4", "AX620E", 48 * 1024)])
def test_npu_level_and_binary_match_quant_level(quant_module, tmp_path, weight_type: str, target: str, ocm: int) -> None:
    module = quant_module(weight_type)
    tiled = npu_level(quant_module(weight_type), target, ocm, tmp_path / "p.safetensors")
    names = {op.name for op in tiled.walk()}
    assert {"npu.softcap", "npu.window_mask", "npu.iota"} <= names
    reference, npu_runner = ModuleRunner(module, store_for(module)), ModuleRunner(tiled, store_for(tiled))
    target_module = lowered(tiled)
    store = store_for(target_module)
    for unit, names_ in GROUPS.items():
        session = AxModelSession(to_axmodel(find_model(target_module, unit), store))
        for group, name in enumerate(names_):
            function = reference.function(name)
            if name == "post":
                shape = tuple(function.function_type.inputs.data[0].get_shape())  # type: ignore[attr-defined]
                inputs = {"input": np.random.default_rng(3).standard_normal(shape).astype(np.float32)}
            else:
                inputs = group_inputs(function, group)
            expected = reference.call(name, list(inputs.values()))
            tiled_out = npu_runner.call(name, list(inputs.values()))
            binary_out = list(session.run(group, inputs).values())
            for e, t, b in zip(expected, tiled_out, binary_out):
                assert relative(e, np.asarray(t, np.float32)) <= 1e-5, name
                assert relative(np.asarray(t, np.float32), b) <= 1e-6, name


def test_window_and_softcap_change_the_result(quant_module) -> None:
    """The patched ops do something on these inputs (so the test above can fail)."""
    plain_module = quant_module("s8")
    runner = ModuleRunner(plain_module, store_for(plain_module))
    function = runner.function("layer_0_g1")
    inputs = group_inputs(function, 1)
    out = runner.call("layer_0_g1", list(inputs.values()))[-1]
    for op in function.body.walk():
        if isinstance(op, tfm.AttentionOp):
            op.properties["sliding_window"] = tfm.int_prop(1000)
    wide = runner.call("layer_0_g1", list(inputs.values()))[-1]
    assert relative(np.asarray(wide, np.float32), np.asarray(out, np.float32)) > 1e-3
