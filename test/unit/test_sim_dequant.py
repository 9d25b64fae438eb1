"""`axc.sim.dequant` against `npu_semantics.dequantize_tile` on random tiles of every format."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from axc import npu_semantics as sem
from axc.sim.dequant import TileDequantizer

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
