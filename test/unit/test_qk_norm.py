"""The per-head q/k norm (`tfm.head_norm`: Qwen3 before RoPE, HunYuan after) through every
level. Each pass it goes through is checked differentially (the IR before and after it on
the same inputs), the norm+rope pair is lowered as one row pass that moves fewer DDR
bytes, and the host loop matches transformers at the quant and npu levels and from the
emitted binaries."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_models import build_tiny_model, reference_logits
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp

from axc.binding import store_for, write_created_params
from axc import isa
from axc.codegen.emit import find_model, to_axmodel, write_model_files
from axc.codegen.payload import load_payload
from axc.llm_build.runtime_files import write_embedding
from axc.dialects import make_context, npu
from axc.frontend.hf_import import import_hf
from axc.hostloop import HostLoop
from axc.interpreters.executor import ModuleExecutor
from axc.interpreters.runner import ModuleRunner
from axc.params import Checkpoint
from axc.passes import tile
from axc.passes.allocate_ocm import AllocateOcm
from axc.passes.double_buffer import DoubleBuffer
from axc.passes.fuse import Fuse
from axc.passes.lower_to_ax620e import LowerToAx620e
from axc.passes.lower_to_ax650 import LowerToAx650
from axc.passes.quantize_weights import QuantizeWeights
from axc.passes.set_activation_type import SetActivationType
from axc.passes.specialize_groups import SpecializeGroups
from axc.passes.tile import Tile
from axc.sim.cost import OPS_PER_ELEMENT, estimate
from axc.sim.executor import AxModelExecutor
from axc.sim.session import AxModelSession

sys.path.insert(0, str(Path(__file__).parent))
from target_build import KV, LASTS, PREFILL, group_inputs  # noqa: E402

QK_FAMILIES = ["qwen3", "hunyuan_v1_dense"]
TINY_OCM = 4 * 1024
GROUPS = ["layer_0_g0", "layer_0_g1", "layer_1_g2"]


@pytest.fixture(scope="module")
def exact_model_dir(tmp_path_factory):
    """`exact_model_dir(family)`: a tiny model whose weights are exact in bf16 (the lm_head
    is stored bf16 on the chip), saved in fp32."""
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = build_tiny_model(family, tmp_path_factory.mktemp(family), bf16_exact=True)
        return cache[family]

    return get


def functions_of(module: ModuleOp) -> dict[str, func.FuncOp]:
    return {f.sym_name.data: f for f in module.ops if isinstance(f, func.FuncOp)}


def stages(model_dir: Path, params: Path, target: str, ocm: int) -> tuple[list[tuple[str, ModuleOp]], ModuleOp]:
    """The module after each pass of the pipeline with fp32 activations and bf16 weights
    (exact for `exact_model_dir` models), and the final module with its created
    parameters written to `params` (so that clones of it can be lowered and emitted)."""
    module = import_hf(model_dir)
    ctx = make_context()
    chain = [("import-hf", module.clone())]
    passes = [
        SpecializeGroups(kv_cache_len=KV, prefill_len=PREFILL, last_kv_cache_len=LASTS),
        QuantizeWeights(weight_type="bf16", post_weight_type="bf16"),
        SetActivationType(hidden="fp32", chip=target),
        Tile(target=target, ocm_bytes=ocm),
        Fuse(),
        DoubleBuffer(),
        AllocateOcm(),
    ]
    for p in passes:
        p.apply(ctx, module)
        module.verify()
        chain.append((p.name, module.clone()))
    write_created_params(module, params)
    return chain, module


def runners(chain: list[tuple[str, ModuleOp]], final: ModuleOp) -> dict[str, ModuleRunner]:
    store = store_for(final)
    return {name: ModuleRunner(m, store) for name, m in chain}


def lower_target(final: ModuleOp, target: str) -> ModuleOp:
    lowered = final.clone()
    (LowerToAx650() if target == "AX650" else LowerToAx620e()).apply(make_context(), lowered)
    return lowered


def relative(expected: list[np.ndarray], actual: list[np.ndarray]) -> float:
    return max(
        float(np.max(np.abs(np.asarray(e, np.float32) - np.asarray(a, np.float32))) / max(float(np.max(np.abs(e))), 1e-30))
        for e, a in zip(expected, actual, strict=True)
    )


@pytest.mark.parametrize("family", QK_FAMILIES)
@pytest.mark.parametrize("target, ocm", [("AX650", 0), ("AX620E", TINY_OCM)])
def test_every_pass_keeps_the_results(exact_model_dir, tmp_path, family: str, target: str, ocm: int) -> None:
    chain, final = stages(exact_model_dir(family), tmp_path / "p.safetensors", target, ocm)
    assert "tfm.head_norm" in str(chain[0][1])
    assert "npu.head_norm" in str(chain[-1][1])
    levels = list(runners(chain, final).items())
    for index, group in enumerate(GROUPS):
        inputs = group_inputs(levels[1][1].function(group), index)
        symbolic = levels[0][1].function(group.rsplit("_g", 1)[0])
        if inputs["K_cache"].shape[-1] == symbolic.function_type.inputs.data[0].get_shape()[-1]:  # type: ignore[attr-defined]
            previous = levels[0][1].call(symbolic.sym_name.data, inputs)  # import-hf: the dynamic layer, same inputs
            start = 1
        else:  # the history-0 group's dummy caches are no cache the dynamic layer takes
            previous, start = levels[1][1].call(group, inputs), 2
        for name, runner in levels[start:]:
            current = runner.call(group, inputs)
            assert relative(previous, current) <= 1e-5, f"{name} changed {group}"
            previous = current
    lowered = lower_target(final, target)
    assert f"{target.lower()}.head_norm" in str(lowered)
    store, npu_level = store_for(lowered), levels[-1][1]
    for layer in (0, 1):
        session = AxModelSession(to_axmodel(find_model(lowered, f"layer_{layer}"), store))
        for group in range(len(LASTS) + 1):
            name = f"layer_{layer}_g{group}"
            inputs = group_inputs(npu_level.function(name), group)
            expected = npu_level.call(name, inputs)
            actual = list(session.run(group, inputs).values())
            assert relative(expected, actual) <= 1e-5, f"lower-to-{target.lower()} changed {name}"


def lowered_group(module: ModuleOp, target: str, ocm: int) -> ModuleOp:
    result = module.clone()
    ctx = make_context()
    Tile(target=target, ocm_bytes=ocm).apply(ctx, result)
    for p in (Fuse(), DoubleBuffer(), AllocateOcm()):
        p.apply(ctx, result)
    return result


@pytest.mark.parametrize("family, order", [("qwen3", ("npu.head_norm", "npu.rope")), ("hunyuan_v1_dense", ("npu.rope", "npu.head_norm"))])
def test_norm_and_rope_are_one_row_pass(tiny_model_dir, monkeypatch, family: str, order: tuple[str, str]) -> None:
    """The second op runs in place on the first's tile; with the queries in DDR (tiny OCM)
    the pair costs one round trip instead of two."""
    module = import_hf(tiny_model_dir(family))
    ctx = make_context()
    SpecializeGroups(kv_cache_len=KV, prefill_len=PREFILL, last_kv_cache_len=LASTS).apply(ctx, module)
    QuantizeWeights(weight_type="s8").apply(ctx, module)
    SetActivationType(hidden="bf16").apply(ctx, module)
    fused = lowered_group(module, "AX620E", TINY_OCM)
    body = [op for op in functions_of(fused)["layer_0_g1"].body.walk() if op.name in order]
    assert len(body) >= 4
    for first, second in zip(body[::2], body[1::2]):
        assert (first.name, second.name) == order
        assert first.operands[-1] is second.operands[0] is second.operands[-1]  # in place
    monkeypatch.setattr(tile, "norm_ropes", lambda ops: [])
    separate = lowered_group(module, "AX620E", TINY_OCM)
    store = store_for(module)
    counts = {}
    for name, lowered in (("fused", fused), ("separate", separate)):
        runner = ModuleRunner(lowered, store)
        function = runner.function("layer_0_g1")
        expected = runner.call("layer_0_g1", group_inputs(function, 0))
        counts[name] = (runner.npu.counters["layer_0_g1"].ddr_read + runner.npu.counters["layer_0_g1"].ddr_write, expected)
    assert counts["fused"][0] < counts["separate"][0], counts
    for e, a in zip(counts["fused"][1], counts["separate"][1]):
        np.testing.assert_array_equal(e, a)


def test_the_binary_and_the_cost_model_know_the_op(exact_model_dir, tmp_path) -> None:
    _, final = stages(exact_model_dir("qwen3"), tmp_path / "p.safetensors", "AX650", 0)
    lowered = lower_target(final, "AX650")
    payload = load_payload(to_axmodel(find_model(lowered, "layer_0"), store_for(lowered)))
    program = payload.programs[1]
    norms = [i for i, _ in isa.walk(program.body) if i.op.mnemonic == "head_norm"]
    assert len(norms) == 2 and {int(i.value("head_dim")) for i in norms} == {16}
    target = payload.target
    cost = estimate(program, target)
    floor = sum(OPS_PER_ELEMENT["head_norm"] * max(o.numel for _, o in i.named()) for i in norms) / (
        target.vector.ops_per_cycle("fp32") * target.clock_hz
    )
    assert cost.busy_s["vector"] > floor > 0


@pytest.mark.parametrize("family", QK_FAMILIES)
def test_host_loop_matches_transformers_at_every_level(exact_model_dir, tmp_path, family: str) -> None:
    """fp32 activations: the quant and npu levels and the emitted binaries give
    transformers' logits within 1e-4 (relative to the largest logit)."""
    model_dir = exact_model_dir(family)
    chain, final = stages(model_dir, tmp_path / "p.safetensors", "AX650", 0)
    lowered = lower_target(final, "AX650")
    out = tmp_path / "build"
    out.mkdir()
    write_model_files(lowered, store_for(lowered), out, family, PREFILL)
    write_embedding(Checkpoint.open(model_dir), out)
    by_name = dict(chain)
    executors = {
        "quant": ModuleExecutor(by_name["set-activation-type"], store_for(final)),
        "npu": ModuleExecutor(by_name["allocate-ocm"], store_for(final)),
        "axmodel": AxModelExecutor(out),
    }
    prompt = np.random.default_rng(1).integers(3, 128, size=11)
    reference = None
    for level, executor in executors.items():
        loop = HostLoop(executor, executor.layout)
        hidden = loop.prefill(prompt)
        ours = [loop.logits(row) for row in hidden]
        tokens = list(map(int, prompt))
        for _ in range(3):
            tokens.append(int(np.argmax(ours[-1])))
            ours.append(loop.logits(loop.decode_hidden(tokens[-1])[-1]))
        if reference is None:
            reference = reference_logits(model_dir, tokens).numpy()
        for step, logits in enumerate(ours):
            error = float(np.max(np.abs(logits - reference[step])) / np.max(np.abs(reference[step])))
            assert error <= 1e-4, f"{level} step {step}: max relative error {error:.2e}"
