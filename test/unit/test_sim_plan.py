"""The plan's analysis of parameter DMAs on a hand-written command stream: a weight tile
partly overwritten in OCM is still read from the parameter blob where it is intact, and
its DMA runs only when something reads the tile's OCM bytes as such."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from axc import isa
from axc import npu_semantics as sem
from axc.isa import Instr, Operand, Program
from axc.sim.plan import Memories, Plan, Workspace, analyse, build_plan
from axc.targets import get_target

BF16, S8, F16 = 10, 2, 9
ROWS, COLS = 8, 32
X, TILE, SCALES, OUT, OUT2 = 0, 1024, 2048, 4096, 4160


def operand(space: int, base: int, sizes: tuple[int, ...], dtype: int, index: int = 0) -> Operand:
    item = isa.DTYPE_OF_CODE[dtype].itemsize
    strides, step = [], item
    for size in reversed(sizes):
        strides.append(step)
        step *= size
    return Operand(space, index, dtype, base, sizes, tuple(reversed(strides)))


def program(read_the_tile_back: bool) -> tuple[Program, Instr]:
    """x @ tile.T; x copied over the tile's first rows; x @ (rows 4..8).T; optionally the
    tile's row 3 stored to an output (a read of the DMA'd bytes)."""
    load, store, mm = isa.OP_BY_NAME["dma_load"], isa.OP_BY_NAME["dma_store"], isa.OP_BY_NAME["matmul"]
    x = operand(isa.OCM, X, (1, COLS), BF16)
    tile_dma = Instr(load, 0, 0, (operand(isa.PARAMS, 0, (ROWS, COLS), S8), operand(isa.OCM, TILE, (ROWS, COLS), S8)), ())
    body = [
        Instr(load, 0, 0, (operand(isa.INPUT, 0, (1, COLS), BF16), x), ()),
        tile_dma,
        Instr(load, 0, 0, (operand(isa.PARAMS, ROWS * COLS, (ROWS, 1), F16), operand(isa.OCM, SCALES, (ROWS, 1), F16)), ()),
        Instr(mm, 0, isa.MATRIX_QUEUE, (
            x, operand(isa.OCM, TILE, (ROWS, COLS), S8), operand(isa.OCM, SCALES, (ROWS, 1), F16), None, None,
            operand(isa.OCM, OUT, (1, ROWS), BF16),
        ), ("s8", 0, 1.0, True, False)),
        Instr(load, 0, 0, (operand(isa.INPUT, 0, (1, COLS), BF16), operand(isa.OCM, TILE, (1, COLS), BF16)), ()),  # rows 0-1
        Instr(mm, 0, isa.MATRIX_QUEUE, (
            x, operand(isa.OCM, TILE + 4 * COLS, (4, COLS), S8), operand(isa.OCM, SCALES + 8, (4, 1), F16), None, None,
            operand(isa.OCM, OUT2, (1, 4), BF16),
        ), ("s8", 0, 1.0, True, False)),
        Instr(store, 0, 0, (operand(isa.OCM, OUT, (1, ROWS), BF16), operand(isa.OUTPUT, 0, (1, ROWS), BF16)), ()),
        Instr(store, 0, 0, (operand(isa.OCM, OUT2, (1, 4), BF16), operand(isa.OUTPUT, 0, (1, 4), BF16, 1)), ()),
    ]
    if read_the_tile_back:
        body.append(Instr(store, 0, 0, (operand(isa.OCM, TILE + 3 * COLS, (1, COLS), S8), operand(isa.OUTPUT, 0, (1, COLS), S8, 2)), ()))
    target = get_target("AX650")
    return Program(isa.CHIPS.index(target.family), target.cores, 0, 1, 1, body), tile_dma


@pytest.mark.parametrize("read_the_tile_back", [False, True])
def test_a_partly_overwritten_tile_is_read_from_the_blob(read_the_tile_back: bool) -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(-128, 128, (ROWS, COLS)).astype(np.int8)
    scales = (rng.random((ROWS, 1)) * 0.05).astype(np.float16)
    x = rng.standard_normal((1, COLS)).astype(ml_dtypes.bfloat16)
    prog, tile_dma = program(read_the_tile_back)
    analysis = analyse(prog)
    assert (tile_dma in [entry.instr for entry in analysis.planned]) == read_the_tile_back
    params = np.concatenate([codes.view(np.uint8).reshape(-1), scales.view(np.uint8).reshape(-1)])
    outputs = [((1, ROWS), np.dtype(ml_dtypes.bfloat16)), ((1, 4), np.dtype(ml_dtypes.bfloat16))]
    if read_the_tile_back:
        outputs.append(((1, COLS), np.dtype(np.int8)))
    memories = Memories(
        np.full(8192, sem.FILL_BYTE, np.uint8), params, np.zeros(0, np.uint8), [np.zeros(2 * COLS, np.uint8)],
        [np.zeros(int(np.prod(shape)) * dtype.itemsize, np.uint8) for shape, dtype in outputs],
    )
    for workspace in (Workspace(threads=1), Workspace(threads=2, lookahead_elements=0, eager_helper=True)):
        plan = build_plan(prog, memories, [((1, COLS), np.dtype(ml_dtypes.bfloat16))], outputs, workspace, analysis)
        result = plan.run([x], as_stored=True)
        weights = sem.dequantize_tile(codes, "s8", scales, None, 0)
        expected = [np.matmul(x.astype(np.float32), weights.T), np.matmul(x.astype(np.float32), weights[4:].T)]
        for got, want in zip(result, expected):
            assert got.tobytes() == want.astype(ml_dtypes.bfloat16).tobytes()
        if read_the_tile_back:
            assert result[2].tobytes() == codes[3].tobytes()


def test_runs_start_at_their_first_matmul_and_read_the_bias_at_commit() -> None:
    """x written, x @ A, a bias written, x @ B + bias, x overwritten, x @ C, x @ D: the runs
    are [A, B] (what was written before A and the bias written between do not break it)
    and [C, D]; batched (two threads, the helper taking all) or not, the same outputs."""
    load, mm = isa.OP_BY_NAME["dma_load"], isa.OP_BY_NAME["matmul"]
    x, bias = operand(isa.OCM, X, (1, COLS), BF16), operand(isa.OCM, 256, (1, ROWS), BF16)
    tile_bytes, scale_at = ROWS * COLS, 4 * ROWS * COLS

    def matmul(k: int, out: int, with_bias: bool) -> Instr:
        return Instr(mm, 0, isa.MATRIX_QUEUE, (
            x, operand(isa.PARAMS, k * tile_bytes, (ROWS, COLS), S8), operand(isa.PARAMS, scale_at + 2 * ROWS * k, (ROWS, 1), F16),
            None, bias if with_bias else None, operand(isa.OCM, out, (1, ROWS), BF16),
        ), ("s8", 0, 1.0, True, False))

    outs = [OUT + 64 * k for k in range(4)]
    body = [
        Instr(load, 0, 0, (operand(isa.INPUT, 0, (1, COLS), BF16), x), ()),
        matmul(0, outs[0], False),
        Instr(load, 0, 0, (operand(isa.INPUT, 0, (1, ROWS), BF16, 1), bias), ()),
        matmul(1, outs[1], True),
        Instr(load, 0, 0, (operand(isa.INPUT, 0, (1, COLS), BF16, 2), x), ()),
        matmul(2, outs[2], False),
        matmul(3, outs[3], False),
        *(Instr(isa.OP_BY_NAME["dma_store"], 0, 0, (operand(isa.OCM, out, (1, ROWS), BF16), operand(isa.OUTPUT, 0, (1, ROWS), BF16, k)), ())
          for k, out in enumerate(outs)),
    ]
    target = get_target("AX650")
    prog = Program(isa.CHIPS.index(target.family), target.cores, 0, 1, 1, body)
    analysis = analyse(prog)
    assert [[analysis.planned[i].instr for i in run] for run, _ in analysis.runs] == [[body[1], body[3]], [body[5], body[6]]]
    rng = np.random.default_rng(5)
    codes = rng.integers(-128, 128, (4, ROWS, COLS)).astype(np.int8)
    scales = (rng.random((4, ROWS, 1)) * 0.05).astype(np.float16)
    x0, b, x1 = (rng.standard_normal(shape).astype(ml_dtypes.bfloat16) for shape in ((1, COLS), (1, ROWS), (1, COLS)))
    params = np.concatenate([codes.view(np.uint8).reshape(-1), scales.view(np.uint8).reshape(-1)])
    weights = [sem.dequantize_tile(codes[k], "s8", scales[k], None, 0) for k in range(4)]
    f32 = [x0.astype(np.float32), x1.astype(np.float32)]
    expected = [
        np.matmul(f32[0], weights[0].T), np.matmul(f32[0], weights[1].T) + b.astype(np.float32),
        np.matmul(f32[1], weights[2].T), np.matmul(f32[1], weights[3].T),
    ]
    specs_in = [((1, COLS), np.dtype(ml_dtypes.bfloat16)), ((1, ROWS), np.dtype(ml_dtypes.bfloat16)), ((1, COLS), np.dtype(ml_dtypes.bfloat16))]
    specs_out = [((1, ROWS), np.dtype(ml_dtypes.bfloat16))] * 4
    for workspace in (Workspace(threads=1), Workspace(threads=2, lookahead_elements=0), Workspace(threads=2, lookahead_elements=0, eager_helper=True)):
        memories = Memories(
            np.full(8192, sem.FILL_BYTE, np.uint8), params, np.zeros(0, np.uint8),
            [np.zeros(2 * COLS, np.uint8), np.zeros(2 * ROWS, np.uint8), np.zeros(2 * COLS, np.uint8)],
            [np.zeros(2 * ROWS, np.uint8) for _ in range(4)],
        )
        plan = build_plan(prog, memories, specs_in, specs_out, workspace, analysis)
        assert len(plan.lookaheads) == (0 if workspace.threads == 1 else 2)
        assert all(lookahead.batch is not None for lookahead in plan.lookaheads)
        for got, want in zip(plan.run([x0, b, x1], as_stored=True), expected):
            assert got.tobytes() == want.astype(ml_dtypes.bfloat16).tobytes()


def s8_tiles(seed: int, tiles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random s8 tiles `[tiles, ROWS, COLS]`, their f16 row scales, the parameter blob
    holding both (codes first) and a bf16 input row."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-128, 128, (tiles, ROWS, COLS)).astype(np.int8)
    scales = (rng.random((tiles, ROWS, 1)) * 0.05).astype(np.float16)
    params = np.concatenate([codes.view(np.uint8).reshape(-1), scales.view(np.uint8).reshape(-1)])
    return codes, scales, params, rng.standard_normal((1, COLS)).astype(ml_dtypes.bfloat16)


def one_row_plan(prog: Program, params: np.ndarray, out: tuple[tuple[int, ...], np.dtype], threads: int) -> tuple[Plan, np.ndarray]:
    """The plan of a stream with one bf16 `[1, COLS]` input and one output, and its OCM."""
    ocm = np.full(8192, sem.FILL_BYTE, np.uint8)
    nbytes = int(np.prod(out[0])) * out[1].itemsize
    memories = Memories(ocm, params, np.zeros(0, np.uint8), [np.zeros(2 * COLS, np.uint8)], [np.zeros(nbytes, np.uint8)])
    specs_in = [((1, COLS), np.dtype(ml_dtypes.bfloat16))]
    return build_plan(prog, memories, specs_in, [out], Workspace(threads=threads, lookahead_elements=0), analyse(prog)), ocm


@pytest.mark.parametrize("in_order", [True, False])
def test_a_run_whose_products_are_stored_one_by_one_writes_them_at_once(in_order: bool) -> None:
    """x @ tile_k into one OCM buffer, each stored by a DMA to the logits' next slot (the
    lm_head's pattern): with two threads the plan is the batch and one copy; the outputs
    and the buffer's last contents are those of the stream run step by step. Stored out
    of order, the pairs stay as they are."""
    load, store, mm = isa.OP_BY_NAME["dma_load"], isa.OP_BY_NAME["dma_store"], isa.OP_BY_NAME["matmul"]
    tiles, f32 = 3, 11
    x, buffer = operand(isa.OCM, X, (1, COLS), BF16), operand(isa.OCM, OUT, (1, ROWS), f32)
    body = [Instr(load, 0, 0, (operand(isa.INPUT, 0, (1, COLS), BF16), x), ())]
    for k in range(tiles):
        slot = k if in_order else tiles - 1 - k
        body += [
            Instr(mm, 0, isa.MATRIX_QUEUE, (
                x, operand(isa.PARAMS, k * ROWS * COLS, (ROWS, COLS), S8),
                operand(isa.PARAMS, tiles * ROWS * COLS + 2 * ROWS * k, (ROWS, 1), F16), None, None, buffer,
            ), ("s8", 0, 1.0, True, False)),
            Instr(store, 0, 0, (buffer, operand(isa.OUTPUT, 4 * ROWS * slot, (1, ROWS), f32)), ()),
        ]
    target = get_target("AX650")
    prog = Program(isa.CHIPS.index(target.family), target.cores, 0, 1, 1, body)
    assert isa.DTYPE_OF_CODE[f32] == np.float32
    codes, scales, params, x0 = s8_tiles(9, tiles)
    got = {}
    for threads in (1, 2):
        plan, ocm = one_row_plan(prog, params, ((1, ROWS * tiles), np.dtype(np.float32)), threads)
        assert len(plan.steps) == (2 if threads == 2 and in_order else 1 + 2 * tiles)
        got[threads] = plan.run([x0])[0].tobytes(), ocm[OUT : OUT + 4 * ROWS].tobytes()
    assert got[1] == got[2]
    weights = [sem.dequantize_tile(codes[k], "s8", scales[k], None, 0) for k in range(tiles)]
    products = [np.matmul(x0.astype(np.float32), w.T) for w in weights]
    expected = np.concatenate(products if in_order else products[::-1], axis=1)
    assert got[1][0] == expected.tobytes() and got[1][1] == products[-1].tobytes()


@pytest.mark.parametrize("layout", ["consecutive", "apart", "over the buffers"])
def test_an_elementwise_op_after_every_pair_of_a_run_runs_once(layout: str) -> None:
    """x @ gate_k into G, x @ up_k into U, act_mul(G, U) into out_k, three times (the MLP's
    pattern): with two threads the plan is the batch and one act_mul over all tiles; the
    outputs and G's and U's last contents are those of the stream run step by step. With
    outputs that do not follow each other, or that overwrite G, the steps stay as they are."""
    consecutive = layout == "consecutive"
    load, store, mm, act_mul = (isa.OP_BY_NAME[name] for name in ("dma_load", "dma_store", "matmul", "act_mul"))
    tiles = 3
    x = operand(isa.OCM, X, (1, COLS), BF16)
    gate, up = operand(isa.OCM, OUT, (1, ROWS), BF16), operand(isa.OCM, OUT + 64, (1, ROWS), BF16)
    result_at = [(OUT if layout == "over the buffers" else OUT + 256) + 2 * ROWS * (2 * k if layout == "apart" else k) for k in range(tiles)]
    body = [Instr(load, 0, 0, (operand(isa.INPUT, 0, (1, COLS), BF16), x), ())]
    for k in range(tiles):
        for j, buffer in enumerate((gate, up)):
            tile = 2 * k + j
            body.append(Instr(mm, 0, isa.MATRIX_QUEUE, (
                x, operand(isa.PARAMS, tile * ROWS * COLS, (ROWS, COLS), S8),
                operand(isa.PARAMS, 2 * tiles * ROWS * COLS + 2 * ROWS * tile, (ROWS, 1), F16), None, None, buffer,
            ), ("s8", 0, 1.0, True, False)))
        body.append(Instr(act_mul, 0, isa.VECTOR_QUEUE, (gate, up, operand(isa.OCM, result_at[k], (1, ROWS), BF16)), ("silu",)))
    body += [
        Instr(store, 0, 0, (operand(isa.OCM, at, (1, ROWS), BF16), operand(isa.OUTPUT, 2 * ROWS * k, (1, ROWS), BF16)), ())
        for k, at in enumerate(result_at)
    ]
    target = get_target("AX650")
    prog = Program(isa.CHIPS.index(target.family), target.cores, 0, 1, 1, body)
    codes, scales, params, x0 = s8_tiles(11, 2 * tiles)
    got = {}
    for threads in (1, 2):
        plan, ocm = one_row_plan(prog, params, ((1, ROWS * tiles), np.dtype(ml_dtypes.bfloat16)), threads)
        assert len(plan.steps) == (2 + tiles if threads == 2 and consecutive else len(body))
        got[threads] = plan.run([x0], as_stored=True)[0].tobytes(), ocm[OUT : OUT + 64 + 2 * ROWS].tobytes()
    assert got[1] == got[2]
    if layout == "over the buffers":
        return
    expected = []
    for k in range(tiles):
        g, u = (np.matmul(x0.astype(np.float32), sem.dequantize_tile(codes[2 * k + j], "s8", scales[2 * k + j], None, 0).T) for j in (0, 1))
        out = np.zeros((1, ROWS), ml_dtypes.bfloat16)
        sem.act_mul(out, g.astype(ml_dtypes.bfloat16), u.astype(ml_dtypes.bfloat16), "silu")
        expected.append(out)
    assert got[1][0] == np.concatenate(expected, axis=1).tobytes()
    assert got[1][1][: 2 * ROWS] == g.astype(ml_dtypes.bfloat16).tobytes() and got[1][1][64:] == u.astype(ml_dtypes.bfloat16).tobytes()


def test_commits_one_after_another_become_one_copy() -> None:
    """x @ tile_k into the place after tile k-1's result (the down projection's pattern),
    then the row stored: with two threads the products after the first are committed in
    one copy; the output is the step-by-step run's."""
    load, store, mm = isa.OP_BY_NAME["dma_load"], isa.OP_BY_NAME["dma_store"], isa.OP_BY_NAME["matmul"]
    tiles = 4
    x = operand(isa.OCM, X, (1, COLS), BF16)
    body = [Instr(load, 0, 0, (operand(isa.INPUT, 0, (1, COLS), BF16), x), ())]
    body += [
        Instr(mm, 0, isa.MATRIX_QUEUE, (
            x, operand(isa.PARAMS, k * ROWS * COLS, (ROWS, COLS), S8),
            operand(isa.PARAMS, tiles * ROWS * COLS + 2 * ROWS * k, (ROWS, 1), F16), None, None,
            operand(isa.OCM, OUT + 2 * ROWS * k, (1, ROWS), BF16),
        ), ("s8", 0, 1.0, True, False))
        for k in range(tiles)
    ]
    body.append(Instr(store, 0, 0, (operand(isa.OCM, OUT, (1, tiles * ROWS), BF16), operand(isa.OUTPUT, 0, (1, tiles * ROWS), BF16)), ()))
    target = get_target("AX650")
    prog = Program(isa.CHIPS.index(target.family), target.cores, 0, 1, 1, body)
    codes, scales, params, x0 = s8_tiles(13, tiles)
    got = {}
    for threads in (1, 2):
        plan, _ = one_row_plan(prog, params, ((1, ROWS * tiles), np.dtype(ml_dtypes.bfloat16)), threads)
        assert len(plan.steps) == (4 if threads == 2 else len(body))
        got[threads] = plan.run([x0], as_stored=True)[0].tobytes()
    expected = [np.matmul(x0.astype(np.float32), sem.dequantize_tile(codes[k], "s8", scales[k], None, 0).T) for k in range(tiles)]
    assert got[1] == got[2] == np.concatenate(expected, axis=1).astype(ml_dtypes.bfloat16).tobytes()
