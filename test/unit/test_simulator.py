"""The simulator's API (sessions, the directory `LayerExecutor` behind the host loop) and
the cost model (overlap, cores, DDR efficiency, the fitted matrix rate and per-token cost)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from axc.binding import store_for
from axc.llm_build.runtime_files import write_embedding
from axc import isa
from axc.codegen.disasm import disassemble
from axc.codegen.emit import find_model, to_axmodel, write_model_files
from axc.isa import Instr, Loop, Operand, Program
from axc.codegen.schedule import schedule
from axc.dialects import make_context
from axc.errors import AxcError
from axc.hostloop import HostLoop
from axc.interpreters.executor import ModuleExecutor
from axc.params import Checkpoint
from axc.passes.lower_to_ax650 import LowerToAx650
from axc.sim.cost import ENGINE_SETUP_CYCLES, estimate, group_tokens, work
from axc.sim.blas_limit import BLAS
from axc.sim.executor import AxModelExecutor
from axc.sim.plan import Workspace
from axc.sim.session import AxModelSession
from axc.textio import module_text
from axc.targets import get_target, with_fitted

sys.path.insert(0, str(Path(__file__).parent))
from runtime_doubles import PlainExecutor  # noqa: E402
from target_build import PREFILL, functions, group_inputs, lowered, npu_module  # noqa: E402


@pytest.fixture(scope="module")
def built(tiny_model_dir, tmp_path_factory):
    """A tiny Qwen2 built for AX650 NPU2 into a runtime directory, and its npu module."""
    model_dir = tiny_model_dir("qwen2")
    out = tmp_path_factory.mktemp("build")
    module = npu_module(model_dir, out / "params.safetensors", "s8", "AX650", "NPU2", hidden="bf16")
    target = lowered(module)
    write_model_files(target, store_for(target), out, "qwen2", PREFILL)
    write_embedding(Checkpoint.open(model_dir), out)
    return module, target, out


def test_host_loop_over_the_binaries_matches_the_npu_level(built) -> None:
    module, _, out = built
    executor = AxModelExecutor(out)
    reference = ModuleExecutor(module)
    assert executor.layout == reference.layout
    prompt = np.array([3, 17, 42, 7, 99, 1, 5, 8, 60, 2, 11])  # two prefill chunks
    loops = [HostLoop(e, e.layout) for e in (executor, reference)]
    hidden = [loop.prefill(prompt) for loop in loops]
    np.testing.assert_array_equal(hidden[0], hidden[1])
    logits = [loop.logits(h[-1]) for loop, h in zip(loops, hidden)]
    np.testing.assert_array_equal(logits[0], logits[1])
    for loop in loops:
        loop.reset()
    assert loops[0].generate(prompt[:5], 6, eos=set()) == loops[1].generate(prompt[:5], 6, eos=set())
    (out / "empty").mkdir()
    with pytest.raises(AxcError, match="no layer files"):
        AxModelExecutor(out / "empty")


def test_session_reuses_its_plans_and_counts(built) -> None:
    module, target, _ = built
    session = AxModelSession(to_axmodel(find_model(target, "layer_0"), store_for(target)))
    assert session.group_count() == 4
    assert session.input_names(0) == ["K_cache", "V_cache", "indices", "input", "mask"]
    assert session.output_names(2) == ["K_cache_out", "V_cache_out", "output"]
    inputs = group_inputs(functions(module)["layer_0_g0"], 0)
    first = session.run(0, inputs)
    plan = session.plans[0]
    second = session.run(0, inputs)
    assert session.plans[0] is plan and session.counters[0].calls == 2
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    assert session.counters[0].ddr_read == 2 * plan.counters.ddr_read > 0
    with pytest.raises(AxcError, match="missing mask"):
        session.run(0, {k: v for k, v in inputs.items() if k != "mask"})
    with pytest.raises(AxcError, match="has shape"):
        session.run(0, {**inputs, "input": inputs["input"][:, :, :8]})
    with pytest.raises(AxcError, match="no shape group 7"):
        session.run(7, inputs)


def operand(space: int, base: int, sizes: tuple[int, ...], dtype: int = 10) -> Operand:
    item = isa.DTYPE_OF_CODE[dtype].itemsize
    strides, step = [], item
    for size in reversed(sizes):
        strides.append(step)
        step *= size
    return Operand(space, 0, dtype, base, sizes, tuple(reversed(strides)))


def prefill_program(chip: str, trips: int = 4) -> Program:
    """x [128, 512] bf16 times `trips` streamed s8 weight tiles [512, 512] (one output each)."""
    dma, mm = isa.OP_BY_NAME["dma_load"], isa.OP_BY_NAME["matmul"]
    x = operand(isa.OCM, 0, (128, 512))
    tile = operand(isa.OCM, 131072, (512, 512), 2)
    scales = operand(isa.OCM, 393216, (512, 1), 9)
    out = dataclasses.replace(operand(isa.OCM, 394240, (128, 512)), loop_strides=(131072, 0, 0, 0))
    weights = dataclasses.replace(operand(isa.PARAMS, 0, (512, 512), 2), loop_strides=(262144, 0, 0, 0))
    scale_src = dataclasses.replace(operand(isa.PARAMS, 1048576, (512, 1), 9), loop_strides=(1024, 0, 0, 0))
    body = [
        Instr(dma, 0, 0, (operand(isa.INPUT, 0, (128, 512)), x), ()),
        Loop(trips, [
            Instr(dma, 0, 0, (weights, tile), ()),
            Instr(dma, 0, 0, (scale_src, scales), ()),
            Instr(mm, 0, isa.MATRIX_QUEUE, (x, tile, scales, None, None, out), ("s8", 0, 1.0, True, False)),
        ]),
    ]
    return Program(isa.CHIPS.index(get_target(chip).family), get_target(chip).cores, 0, 1, 1, body)


def test_cost_model_uses_the_cores_and_the_ddr_efficiency() -> None:
    # A matrix-bound program (16-bit MACs at 1/4 of INT8), without the per-token cost.
    one, three = (with_fitted(get_target("AX650", mode), half_rate=0.25, token_s=0.0) for mode in ("NPU1", "NPU3"))
    single = estimate(schedule(prefill_program("AX650"), one), one)
    split = schedule(dataclasses.replace(prefill_program("AX650"), cores=3), three)
    assert {i.core for i, _ in isa.walk(split.body) if i.op.mnemonic == "matmul"} == {0, 1, 2}
    triple = estimate(split, three)
    assert triple.latency_s < 0.6 * single.latency_s
    assert triple.busy_s["matrix"] == pytest.approx(single.busy_s["matrix"], rel=0.05)
    slow = dataclasses.replace(one, ddr_efficiency=one.ddr_efficiency / 4)
    assert estimate(schedule(prefill_program("AX650"), slow), slow).latency_s > single.latency_s
    # Every weight byte crosses DDR once; one tile buffer means the next tile's DMA waits
    # for the matmul reading the buffer, so nothing overlaps (double-buffer is what helps).
    assert single.ddr_read >= 4 * (262144 + 1024) + 131072
    assert single.latency_s >= single.busy_s["matrix"] + 0.9 * single.busy_s["dma"]


def test_cost_model_fitted_matrix_rate_and_token_cost() -> None:
    one = get_target("AX650", "NPU1")
    program = schedule(prefill_program("AX650"), one)
    base = estimate(program, dataclasses.replace(one, token_s=0.0))
    # The 16-bit rate is `half_rate` of INT8: doubling it halves the matmuls' time past their setup.
    fast = with_fitted(one, half_rate=2 * one.matrix.peak_ops_per_s("bf16") / one.matrix.peak_ops_per_s("s8"), token_s=0.0)
    assert fast.matrix.peak_ops_per_s("bf16") == pytest.approx(2 * one.matrix.peak_ops_per_s("bf16"))
    assert fast.matrix.peak_ops_per_s("s8") == one.matrix.peak_ops_per_s("s8")
    setup = 4 * ENGINE_SETUP_CYCLES / one.clock_hz
    assert estimate(program, fast).busy_s["matrix"] - setup == pytest.approx((base.busy_s["matrix"] - setup) / 2)
    # Every call pays `token_s` per token on top of the replay; nothing else changes.
    fixed = with_fitted(one, token_s=1e-5)
    for tokens in (1, 128):
        cost = estimate(program, fixed, tokens)
        assert cost.fixed_s == pytest.approx(tokens * 1e-5)
        assert cost.latency_s == pytest.approx(base.latency_s + tokens * 1e-5)
        assert cost.busy_s == base.busy_s and cost.ddr_bytes == base.ddr_bytes
    assert "ms fixed per call" in estimate(program, fixed, 128).summary()


def weight_matmul(fmt: str, rows: int, k: int = 512, n: int = 512) -> Instr:
    """out [rows, n] = x [rows, k] times a weight tile in `fmt` (s4: two weights a byte), group 128."""
    packed = k // 2 if fmt == "s4" else k
    x, out = operand(isa.OCM, 0, (rows, k)), operand(isa.OCM, 1 << 20, (rows, n))
    tile, scales = operand(isa.OCM, 2 << 20, (n, packed), 1 if fmt == "s4" else 2), operand(isa.OCM, 3 << 20, (n, k // 128), 9)
    return Instr(isa.OP_BY_NAME["matmul"], 0, isa.MATRIX_QUEUE, (x, tile, scales, None, None, out), (fmt, 128, 1.0, True, False))


def test_s4_weights_are_expanded_before_the_macs_where_the_chip_has_no_int4_multiply() -> None:
    ax620e, ax650 = get_target("AX620E"), get_target("AX650")
    assert ax620e.unpack_weights_per_s > 0 and ax650.unpack_weights_per_s == 0
    assert ax620e.assumption("unpack_per_cycle") and "StackFlow" in ax620e.assumption("unpack_per_cycle")
    expand = 512 * 512 / ax620e.unpack_weights_per_s
    rate = ax620e.matrix.macs_per_cycle("bf16") * ax620e.clock_hz
    block = ax620e.matmul_tile.m * 512 * 512 / rate  # one row block of MACs
    assert expand > block  # a one-token step is bound by the expansion, not its MACs
    setup = ENGINE_SETUP_CYCLES / ax620e.clock_hz
    for rows in (1, 128):
        s8, s4 = (work(weight_matmul(fmt, rows), ax620e).seconds for fmt in ("s8", "s4"))
        blocks = -(-rows // ax620e.matmul_tile.m)
        assert s8 == pytest.approx(setup + blocks * block)
        # The expansion takes the first row block's place; the other blocks reuse the tile.
        assert s4 == pytest.approx(setup + expand + (blocks - 1) * block)
    # AX650 multiplies int4 weights natively: s4 costs what s8 does.
    assert work(weight_matmul("s4", 128), ax650).seconds == work(weight_matmul("s8", 128), ax650).seconds


def test_cost_model_agrees_with_the_simulator_on_bytes(built) -> None:
    _, target, _ = built
    session = AxModelSession(to_axmodel(find_model(target, "layer_0"), store_for(target)))
    tokens = [group_tokens(g) for g in session.payload.model.groups]
    assert tokens[0] == 1 and set(tokens[1:]) == {PREFILL}  # decode, then the prefill groups
    for group in range(session.group_count()):
        cost = estimate(session.payload.programs[group], session.payload.target)
        counted = session.plan(group).counters
        assert counted.ddr_read <= cost.ddr_read <= 4 * counted.ddr_read
        assert cost.latency_s > 0 and cost.instructions >= session.plan(group).instructions


def test_float_matmuls_on_the_convolution_units_change_no_result(built) -> None:
    """FLOAT_MATMUL_USE_CONV_EU=1 moves attention's QK^T and PV to `c<k>.cv` in the binary;
    the simulator's results are bit-identical, the cost model runs them at the units' rate."""
    module, target, _ = built
    conv = module.clone()
    LowerToAx650(float_matmul_use_conv_eu=True).apply(make_context(), conv)
    plain = AxModelSession(to_axmodel(find_model(target, "layer_0"), store_for(target)))
    moved = AxModelSession(to_axmodel(find_model(conv, "layer_0"), store_for(conv)))
    assert "c0.cv" in module_text(disassemble(moved.payload, "l0")[0])
    for group in range(plain.group_count()):
        matmuls = [i for i, _ in isa.walk(moved.payload.programs[group].body) if i.op.mnemonic == "matmul"]
        assert {(i.value("format") == "float", i.queue) for i in matmuls} == {(True, isa.CONV_QUEUE), (False, isa.MATRIX_QUEUE)}
        inputs = group_inputs(functions(module)[f"layer_0_g{group}"], group)
        a, b = plain.run(group, inputs), moved.run(group, inputs)
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
        before = estimate(plain.payload.programs[group], plain.payload.target)
        after = estimate(moved.payload.programs[group], moved.payload.target)
        assert before.busy_s["conv"] == 0 < after.busy_s["conv"] < before.busy_s["matrix"] - after.busy_s["matrix"]
        assert after.ddr_bytes == before.ddr_bytes


def test_the_host_keeps_the_cache_as_the_layers_take_it_and_holds_the_blas_limit_per_token(built, monkeypatch) -> None:
    """The same bytes out as with an fp32 cache and a limit set per plan, through every
    group (two prefill chunks, the second with a history, then decode steps)."""
    _, _, out = built
    workspace = lambda: Workspace(threads=2, lookahead_elements=0)  # noqa: E731  # every plan needs one BLAS thread
    executor = AxModelExecutor(out, workspace())
    assert executor.cache_dtype == np.dtype(ml_dtypes.bfloat16)
    loops = [HostLoop(executor, executor.layout), HostLoop(PlainExecutor(AxModelExecutor(out, workspace())), executor.layout)]
    assert loops[0].k_cache.dtype == executor.cache_dtype and loops[1].k_cache.dtype == np.float32
    sets = []
    one_thread = BLAS.one_thread
    monkeypatch.setattr(BLAS, "one_thread", lambda: (sets.append(BLAS.saved is None), one_thread()))
    prompt = np.array([3, 17, 42, 7, 99, 1, 5, 8, 60, 2, 11])
    seen = []
    for loop in loops:
        sets.clear()
        hidden = loop.prefill(prompt)
        runs = [hidden, loop.logits(hidden[-1])]
        for token in (5, 9, 1):
            runs += [hidden := loop.decode_hidden(token), loop.logits(hidden[-1])]
        runs += [loop.k_cache.astype(np.float32), loop.v_cache.astype(np.float32)]
        seen.append([r.tobytes() for r in runs])
        chunks = -(-len(prompt) // executor.layout.prefill_len)
        assert sum(sets) == (chunks + 1 + 2 * 3 if loop is loops[0] else len(sets))  # per prefill chunk, step, post call
        assert loop is loops[0] or len(sets) > 4 * executor.layout.num_layers  # per plan
    assert seen[0] == seen[1]
    assert all(executor.layer(i).plan(0).one_blas for i in range(executor.layout.num_layers))
    assert BLAS.saved is None and BLAS.holds == 0


def test_layer_files_that_take_the_cache_in_another_dtype_are_refused(built, monkeypatch) -> None:
    _, _, out = built
    executor = AxModelExecutor(out)
    monkeypatch.setattr(executor, "cache_dtype", np.dtype(np.float16))  # as a layer 0 of another build would
    with pytest.raises(AxcError, match=r"_l1_together.axmodel takes the K/V cache as bfloat16, .*_l0_together.axmodel as float16: .*different builds; rebuild"):
        executor.layer(1)
