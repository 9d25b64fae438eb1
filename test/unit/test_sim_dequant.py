"""`axc.sim.dequant` against `npu_semantics.dequantize_tile` on random tiles of every format,
and its row-blocked products against `np.matmul` of the whole dequantized tile."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import ml_dtypes
import numpy as np
import pytest

from axc import npu_semantics as sem
from axc.sim.blas import ROW_BLOCK, SGEMV
from axc.sim.dequant import DOT_S8, MIN_COLS, GemvBatch, TileDequantizer, TileGemv

RNG = np.random.default_rng(7)


def tile(fmt: str, rows: int, cols: int, group: int, asym: bool, scale_type: type) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    groups = -(-cols // (group or cols))
    if fmt == "s8":
        codes = RNG.integers(-128, 128, (rows, cols)).astype(np.int8)
    elif fmt == "s4":
        codes = RNG.integers(0, 256, (rows, cols // 2)).astype(np.uint8)
    elif fmt == "float":
        codes = RNG.standard_normal((rows, cols)).astype(scale_type)
        return codes, None, None
    else:
        codes = RNG.standard_normal((rows, cols)).astype(ml_dtypes.float8_e4m3fn)
    scales = (RNG.random((rows, groups)) * 0.1 - (0.02 if scale_type is np.float32 else 0.0)).astype(scale_type)
    zeros = RNG.integers(0, 16 if fmt == "s4" else 128, (rows, groups)).astype(np.uint8 if fmt == "s4" else np.int8) if asym else None
    if group == 0:
        scales = scales.reshape(rows, 1)
        zeros = None if zeros is None else zeros.reshape(rows, 1)
    return codes, scales, zeros


CASES = [
    ("s8", 0, False, np.float16), ("s8", 32, False, np.float16), ("s8", 48, True, ml_dtypes.bfloat16),
    ("s8", 0, True, np.float32), ("s4", 0, False, np.float16), ("s4", 32, True, np.float16),
    ("s4", 64, False, np.float32), ("fp8_e4m3", 0, False, ml_dtypes.bfloat16),
    ("float", 0, False, ml_dtypes.bfloat16), ("float", 0, False, np.float16),
]


@pytest.mark.parametrize(("fmt", "group", "asym", "scale_type"), CASES)
def test_same_bits_as_dequantize_tile(fmt: str, group: int, asym: bool, scale_type: type) -> None:
    rows, cols = 24, 160  # 160 = 5 groups of 32, 3⅓ of 48: a short last group
    codes, scales, zeros = tile(fmt, rows, cols, group, asym, scale_type)
    strided = np.zeros((rows, codes.shape[1] + 8), codes.dtype)
    strided[:, 4 : 4 + codes.shape[1]] = codes
    for source in (codes, strided[:, 4 : 4 + codes.shape[1]]):  # contiguous and row-strided
        dequantizer = TileDequantizer.of(source, fmt, scales, zeros, group)
        assert dequantizer is not None and dequantizer.shape == (rows, cols)
        out = np.full((rows, cols), np.nan, np.float32)
        dequantizer(out)
        expected = sem.dequantize_tile(source, fmt, scales, zeros, group)
        assert out.tobytes() == expected.tobytes()


def test_tiles_it_does_not_handle_are_left_to_the_reference() -> None:
    codes, scales, _ = tile("s8", 8, 64, 0, False, np.float16)
    assert TileDequantizer.of(codes, "s8", scales[:4], None, 0) is None  # scales of another shape
    assert TileDequantizer.of(codes.view(np.uint8), "s8", scales, None, 0) is None
    assert TileDequantizer.of(codes, "s8", None, None, 0) is None
    assert TileDequantizer.of(codes[0], "s8", scales, None, 0) is None
    assert TileDequantizer.of(codes, "float", None, None, 0) is None  # integer codes as float weights


def reference_product(x: np.ndarray, codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray | None, group: int) -> np.ndarray:
    """What the simulator computed before `TileGemv`: the whole fp32 tile, then `np.matmul`."""
    return np.matmul(x, np.swapaxes(sem.dequantize_tile(codes, "s8", scales, zeros, group), -1, -2))


@pytest.mark.parametrize(("group", "asym"), [(0, False), (0, True), (32, False), (48, True)])
def test_row_blocked_product_has_the_bits_of_the_whole_tile(group: int, asym: bool) -> None:
    """Row remainders of the tile and of its blocks, the model's row lengths (896, 4864),
    rows of two sgemv_t chunks (4112), short rows, odd block sizes and unaligned codes,
    in registers (symmetric, a scale per row, rows of 16k) and in row blocks: every
    output bit for bit."""
    for rows, cols in [(2, 16), (3, 17), (5, 33), (9, 100), (13, 896), (64, 4864), (250, 896), (127, 160), (7, 4112)]:
        if group >= cols:
            continue
        codes, scales, zeros = tile("s8", rows, cols, group, asym, np.float16)
        shifted = np.zeros(codes.size + 3, np.int8)[3:].reshape(rows, cols)  # an address that is no multiple of 4
        shifted[...] = codes
        x = RNG.standard_normal((1, cols)).astype(np.float32)
        x[0, :: max(1, cols // 5)] *= 1e6  # big and small terms: the order of the sums shows
        expected = reference_product(x, codes, scales, zeros, group)
        for source in (codes, shifted):
            dequantizer = TileDequantizer.of(source, "s8", scales, zeros, group)
            assert dequantizer is not None and TileGemv.supports(dequantizer)
            for block_rows in {TileGemv.block_rows(cols), 4, 12, 4 * rows}:
                out = np.full((1, rows), np.nan, np.float32)
                gemv = TileGemv(dequantizer, np.zeros((block_rows, cols), np.float32))
                assert gemv.in_registers == (not group and not asym and cols % 16 == 0)
                gemv(x, out)
                assert out.tobytes() == expected.tobytes(), (rows, cols, block_rows)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nan_and_infinity_go_through_the_blocks_as_through_the_whole_tile() -> None:
    codes, scales, _ = tile("s8", 24, 64, 0, False, np.float32)
    x = RNG.standard_normal((1, 64)).astype(np.float32)
    x[0, 3], x[0, 9] = np.nan, np.inf
    scales[5, 0] = np.inf
    dequantizer = TileDequantizer.of(codes, "s8", scales, None, 0)
    assert dequantizer is not None
    out = np.zeros((1, 24), np.float32)
    gemv = TileGemv(dequantizer, np.zeros((8, 64), np.float32))
    assert gemv.in_registers  # which gives up on NaN outputs for the BLAS call's payloads
    gemv(x, out)
    assert out.tobytes() == reference_product(x, codes, scales, None, 0).tobytes()


def test_row_blocks_are_left_out_where_the_bits_could_differ() -> None:
    """One row (`np.matmul` takes a dot product), rows of fewer than `MIN_COLS` elements
    (OpenBLAS's short-row kernels group outputs by 16), s4 and float tiles."""
    for fmt, rows, cols in [("s8", 1, 64), ("s8", 8, MIN_COLS - 1), ("s4", 8, 64), ("float", 8, 64)]:
        codes, scales, zeros = tile(fmt, rows, cols, 0, False, np.float16)
        dequantizer = TileDequantizer.of(codes, fmt, scales, zeros, 0)
        assert dequantizer is not None and not TileGemv.supports(dequantizer)
    assert SGEMV is not None, "numpy's cblas_sgemv was not found: the simulator runs without row blocks"
    assert DOT_S8, "the register kernel does not reproduce this machine's sgemv_t: the simulator runs row blocks"
    assert TileGemv.block_rows(896) % ROW_BLOCK == 0 and TileGemv.block_rows(1 << 20) == 2 * ROW_BLOCK


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("shared", [True, False])
def test_batched_products_have_the_bits_of_each_tile(shared: bool) -> None:
    """A run of tiles (the model's shapes, an unaligned one, a two-chunk one, one whose
    product is NaN) in one call, in two halves, and shared by two threads claiming chunks: every
    product bit for bit the tile's own `np.matmul`; the NaN tile is flagged, then repaired."""
    shapes = [(448, 896), (128, 896), (64, 896), (8, 896)] if shared else [(64, 4864), (12, 896), (8, 4112), (16, 48)]
    tiles = [tile("s8", rows, cols, 0, False, np.float16) for rows, cols in shapes]
    codes0 = np.zeros(tiles[1][0].size + 3, np.int8)[3:].reshape(tiles[1][0].shape)
    codes0[...] = tiles[1][0]
    tiles[1] = (codes0, *tiles[1][1:])
    inputs = [RNG.standard_normal((1, shapes[0 if shared else k][1])).astype(ml_dtypes.bfloat16) for k in range(len(shapes))]
    inputs[2 if shared else 0] = inputs[2 if shared else 0].copy()
    if not shared:
        inputs[2][0, 5] = np.nan
    else:
        tiles[2][1][3, 0] = np.inf  # scale inf * code 0 is NaN: tile 2's product
        tiles[2][0][3, :] = 0
    gemvs = []
    for codes, scales, _ in tiles:
        dequantizer = TileDequantizer.of(codes, "s8", scales, None, 0)
        assert dequantizer is not None
        gemvs.append(TileGemv(dequantizer, np.zeros((TileGemv.block_rows(codes.shape[1]), codes.shape[1]), np.float32)))
    batch = GemvBatch.of(gemvs, shared)
    assert batch is not None and batch.chunk < batch.count
    rows = [inputs[0]] if shared else inputs
    half = batch.count // 2
    for run in ("whole", "halves", "shared"):
        batch.y[:] = -1.0
        batch.cast(rows)
        if run == "whole":
            batch.compute(0, batch.count)
        elif run == "halves":
            batch.compute(half, batch.count)
            batch.compute(0, half)
        else:
            batch.claim()
            with ThreadPoolExecutor(1) as pool:
                other = pool.submit(batch.share)
                batch.share()
                other.result()
            assert batch.counter[0] >= batch.count
        for k, (codes, scales, _) in enumerate(tiles):
            x = (inputs[0] if shared else inputs[k]).astype(np.float32)
            expected = reference_product(x, codes, scales, None, 0)
            assert bool(batch.flags[k]) == (k == 2) and np.isnan(expected).any() == (k == 2), k
            if k != 2:
                assert batch.results[k].tobytes() == expected.tobytes(), k
        batch.repair()
        for k, (codes, scales, _) in enumerate(tiles):
            x = (inputs[0] if shared else inputs[k]).astype(np.float32)
            assert batch.results[k].tobytes() == reference_product(x, codes, scales, None, 0).tobytes(), k


def test_runs_the_batch_does_not_take_whole_are_refused() -> None:
    """Row counts that are no multiple of four, asymmetric tiles, unequal rows of a shared input."""
    def gemv(rows: int, cols: int, asym: bool = False) -> TileGemv:
        codes, scales, zeros = tile("s8", rows, cols, 0, asym, np.float16)
        dequantizer = TileDequantizer.of(codes, "s8", scales, zeros, 0)
        assert dequantizer is not None
        return TileGemv(dequantizer, np.zeros((8, cols), np.float32))

    assert GemvBatch.of([gemv(8, 64), gemv(6, 64)], True) is None
    assert GemvBatch.of([gemv(8, 64), gemv(8, 64, asym=True)], True) is None
    assert GemvBatch.of([gemv(8, 64), gemv(8, 96)], True) is None
    assert GemvBatch.of([gemv(8, 64), gemv(8, 96)], False) is not None
