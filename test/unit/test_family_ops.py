"""The ops the model families bring, on every level: soft-capping, in-layer sliding windows
and longrope. The kernels against an explicit mask and transformers' rope tables; the npu
level against the quant level and the emitted binary against the npu level, on a tiny model
whose attention ops carry a softcap and a window shorter than the prompt, whose `@post`
soft-caps the logits and whose rope ops are longrope with a factor table."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32

from axc import kernels
from axc.binding import store_for
from axc.codegen.emit import find_model, to_axmodel
from axc.dialects import make_context, quant, tfm
from axc.dialects.axc import ParamAttr, ParamOp
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


def test_longrope_kernel_is_transformers() -> None:
    """The factor table and the cos/sin scale as transformers computes them (Phi-3 rule)."""
    import torch
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    short = [1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0]
    config = transformers.Phi3Config(
        hidden_size=64, num_attention_heads=4, max_position_embeddings=256, original_max_position_embeddings=64,
        rope_parameters={"rope_type": "longrope", "rope_theta": 1e4, "short_factor": short, "long_factor": [2 * f for f in short]},
    )
    inv_freq, mscale = ROPE_INIT_FUNCTIONS["longrope"](config, "cpu")
    spec = kernels.RopeSpec(head_dim=16, rotary_dim=16, theta=1e4, scaling="longrope", mscale=mscale)
    np.testing.assert_array_equal(spec.inverse_frequencies(np.array(short, np.float32)), inv_freq.numpy())
    positions = np.arange(40)
    cos, sin = spec.cos_sin(positions, np.array(short, np.float32))
    emb = torch.cat([inv_freq[None] * torch.arange(40, dtype=torch.float32)[:, None]] * 2, dim=-1)
    np.testing.assert_allclose(cos, (emb.cos() * mscale).numpy(), rtol=0, atol=3e-7)  # an ulp of cos/sin
    np.testing.assert_allclose(sin, (emb.sin() * mscale).numpy(), rtol=0, atol=3e-7)  # an ulp of cos/sin
    assert mscale > 1.0


def test_interleaved_rope_kernel_is_glm() -> None:
    """`#tfm.rope<..., interleaved = true>` pairs features `2i, 2i+1` as transformers' GLM
    does (ChatGLM: the first half of each head rotates)."""
    import torch
    from transformers.models.glm.modeling_glm import apply_rotary_pos_emb

    spec = kernels.RopeSpec(head_dim=16, rotary_dim=8, theta=1e4, interleaved=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 5, 2 * 16)).astype(np.float32)
    positions = np.array([[0, 1, 2, 7, 30]])
    cos, sin = spec.cos_sin(positions.reshape(5))
    heads = torch.from_numpy(x.reshape(1, 5, 2, 16).transpose(0, 2, 1, 3).copy())
    expected, _ = apply_rotary_pos_emb(heads, heads, torch.from_numpy(cos)[None], torch.from_numpy(sin)[None])
    got = kernels.rope(x, positions, 2, spec)
    np.testing.assert_allclose(got, expected.numpy().transpose(0, 2, 1, 3).reshape(x.shape), rtol=0, atol=1e-6)
    assert not np.allclose(got, kernels.rope(x, positions, 2, dataclasses.replace(spec, interleaved=False)))


def test_rope_layout_is_a_flag_of_the_rope_record() -> None:
    """The layout takes no value slot (files written before it decode as rotate-half)."""
    from axc import isa

    rope = isa.OP_BY_NAME["rope"]
    assert [imm.name for imm in rope.flags] == ["interleaved"]
    assert len(rope.values) <= isa.IMM_SLOTS


EXT_SCOPE = "axc"
"""The created-parameter scope: the table is saved with the quantized weights."""
MSCALE = 1.25


def ext_factors(rotary_dim: int) -> np.ndarray:
    return np.linspace(1.0, 6.0, rotary_dim // 2, dtype=np.float32)


def add_longrope(module: ModuleOp) -> ModuleOp:
    """Every rope op longrope, reading one factor table with an mscale."""
    for function in module.ops:
        if not isinstance(function, func.FuncOp):
            continue
        table: ParamOp | None = None
        for op in list(function.body.walk()):
            if not isinstance(op, tfm.RopeOp):
                continue
            spec = op.rope.spec(op.head_dim.value.data)
            rotary = spec.rotary_dim
            if table is None:
                table = ParamOp(ParamAttr(EXT_SCOPE, "rope.ext_factors"), TensorType(f32, (rotary // 2,)))
                function.body.block.insert_op_before(table, function.body.block.first_op)
            props = dict(op.properties)
            props["rope"] = tfm.RopeAttr.of(dataclasses.replace(spec, scaling="longrope", mscale=MSCALE))
            new = tfm.RopeOp.create(operands=[*op.operands, table.result], result_types=[op.result.type], properties=props)
            op.result.replace_all_uses_with(new.result)
            function.body.block.insert_op_before(new, op)
            function.body.block.erase_op(op)
    store_for(module).add(EXT_SCOPE, "rope.ext_factors", ext_factors(16))
    module.verify()
    return module


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
    def make(weight_type: str, hidden: str = "fp32", capped: bool = True) -> ModuleOp:
        imported = import_hf(tiny_model_dir("qwen2"))
        module = add_longrope(add_softcap_and_window(imported) if capped else imported)
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
    assert all(op.ext_factors is not None for op in tiled.walk() if op.name == "npu.rope")
    assert_levels_agree(module, tiled)


def assert_levels_agree(module: ModuleOp, tiled: ModuleOp) -> None:
    """The npu level `tiled` of the quant module `module` and its emitted binary compute
    what `module` does, on every group of layer 0 and on `@post`."""
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


def test_cost_model_counts_the_softcaps_and_the_window(quant_module, tmp_path) -> None:
    """Each prefill group's soft-capped, windowed attention and `@post`'s capped logits take
    longer in the cost model than the same module without them."""
    from axc.codegen.payload import load_payload
    from axc.sim.cost import estimate

    def latencies(capped: bool) -> list[float]:
        params = tmp_path / f"p{int(capped)}.safetensors"
        target_module = lowered(npu_level(quant_module("s8", capped=capped), "AX650", 0, params))
        store = store_for(target_module)
        result = []
        for unit in GROUPS:
            payload = load_payload(to_axmodel(find_model(target_module, unit), store))
            result += [estimate(program, payload.target).latency_s for program in payload.programs]
        return result

    assert all(capped > plain for capped, plain in zip(latencies(True), latencies(False), strict=True))


PHI = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-phi"
"""Phi-2's parallel block under one LayerNorm with bias, and `@post`'s LayerNorm with bias
and lm_head bias (random biases: `test/fixtures/make_family_fixtures.py`)."""


def phi_module(weight_type: str) -> ModuleOp:
    module = import_hf(PHI)
    ctx = make_context()
    SpecializeGroups(kv_cache_len=KV, prefill_len=PREFILL, last_kv_cache_len=LASTS).apply(ctx, module)
    QuantizeWeights(weight_type=weight_type).apply(ctx, module)
    SetActivationType(hidden="fp32").apply(ctx, module)
    return module


@pytest.mark.parametrize("weight_type, target, ocm", [("s8", "AX650", 0), ("bf16", "AX620E", 4 * 1024)])
def test_parallel_block_and_biases_match_on_every_level(tmp_path, weight_type: str, target: str, ocm: int) -> None:
    tiled = npu_level(phi_module(weight_type), target, ocm, tmp_path / "p.safetensors")
    post = next(op for op in tiled.ops if isinstance(op, func.FuncOp) and op.sym_name.data == "post")
    norms = [op for op in post.walk() if op.name == "npu.layer_norm"]
    heads = [op for op in post.walk() if op.name == "npu.matmul"]
    assert norms and all(op.bias is not None for op in norms) and heads and all(op.bias is not None for op in heads)
    assert_levels_agree(phi_module(weight_type), tiled)


def test_biases_and_the_parallel_sum_change_the_result() -> None:
    """Each of the three is live on these weights (so the test above can fail)."""
    module = phi_module("s8")
    runner = ModuleRunner(module, store_for(module))
    inputs = group_inputs(runner.function("layer_0_g1"), 1)
    hidden = np.random.default_rng(3).standard_normal((1, 1, 16)).astype(np.float32)
    layer, logits = runner.call("layer_0_g1", list(inputs.values()))[-1], runner.call("post", [hidden])[0]
    for function in ("post", "layer_0_g1"):
        for op in runner.function(function).body.walk():
            if isinstance(op, tfm.LayerNormOp) and function == "post":
                op.operands = [op.input, op.weight]  # the final norm's bias dropped
            if isinstance(op, tfm.AddOp) and isinstance(op.rhs.owner, tfm.LinearOp | quant.LinearOp):
                op.operands = [op.lhs, op.lhs]  # attn + attn instead of attn + ffn
    changed_layer = runner.call("layer_0_g1", list(inputs.values()))[-1]
    changed_logits = runner.call("post", [hidden])[0]
    assert relative(np.asarray(layer, np.float32), np.asarray(changed_layer, np.float32)) > 1e-2
    assert relative(np.asarray(logits, np.float32), np.asarray(changed_logits, np.float32)) > 1e-2


def test_cost_model_counts_the_biases_and_the_layernorm(tmp_path) -> None:
    """`@post`'s predicted time and DDR traffic include the LayerNorm's and the lm_head's
    biases: dropping them removes their loads (exactly their bytes) and shortens it."""
    from axc.codegen.payload import load_payload
    from axc.sim.cost import estimate

    def post_cost(drop_biases: bool) -> tuple[float, int]:
        module = phi_module("bf16")
        if drop_biases:
            for op in module.walk():
                if isinstance(op, tfm.LayerNormOp | quant.LinearOp | tfm.LinearOp) and op.parent_op().sym_name.data == "post":  # type: ignore[union-attr]
                    op.operands = list(op.operands)[:2]
        target_module = lowered(npu_level(module, "AX650", 0, tmp_path / f"p{int(drop_biases)}.safetensors"))
        payload = load_payload(to_axmodel(find_model(target_module, "post"), store_for(target_module)))
        cost = estimate(payload.programs[0], payload.target)
        return cost.latency_s, cost.ddr_read

    (with_s, with_bytes), (without_s, without_bytes) = post_cost(False), post_cost(True)
    assert with_s > without_s
    assert with_bytes - without_bytes >= (16 + 32) * 4  # the norm's and the lm_head's fp32 biases
