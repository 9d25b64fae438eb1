"""The decode attention's small matmuls (`axc.sim.attention`) write the bytes
`npu_semantics.matmul` writes: random operands (with NaN, inf and signed zeros), bf16 and
fp32, the Qwen2.5-0.5B decode shape and others."""

from __future__ import annotations

import numpy as np
import pytest

from axc import npu_semantics as sem
from axc.sim.attention import Outer, ProbsByTile, RowsByTile
from axc.sim.blas import SGEMV, SGEMV_COLS

from test_sim_vector import BF16, F32, _work, random_memory


@pytest.mark.skipif(SGEMV is None, reason="numpy's BLAS not found: the plan keeps MatmulStep")
@pytest.mark.parametrize("special", [0.0, 0.01])
@pytest.mark.parametrize("alpha", [0.125, 1.0])
@pytest.mark.parametrize("dtypes", [(BF16, BF16, F32), (F32, BF16, F32), (BF16, F32, BF16)])
@pytest.mark.parametrize("shape", [(7, 255, 64), (14, 100, 64), (2, 37, 128), (1, 2, 3)])
def test_scores(shape: tuple[int, int, int], dtypes: tuple[np.dtype, np.dtype, np.dtype], alpha: float, special: float) -> None:
    heads, rows, depth = shape
    lhs_type, rhs_type, out_type = dtypes
    for seed in range(4):
        rng = np.random.default_rng(seed)
        memory = random_memory(rng, 8 * (heads + rows + heads) * max(depth, rows) * 4, special if seed % 2 else 0.0)
        values = memory.view(BF16).astype(np.float32)
        lhs = values[: heads * depth].reshape(heads, 1, depth).astype(lhs_type)
        tile = values[heads * depth : heads * depth + rows * 2 * depth].reshape(rows, 2 * depth).astype(rhs_type)
        rhs = tile[:, :depth]  # one KV head of a (rows, 2 x depth) cache: strided rows
        mine, theirs = np.zeros((heads, 1, rows), out_type), np.zeros((heads, 1, rows), out_type)
        step = RowsByTile.of(mine, lhs, rhs, alpha, _work({}))
        assert step is not None
        with np.errstate(all="ignore"):
            step()
            step()
            sem.matmul(theirs, lhs, rhs, alpha=alpha, transpose_b=True)
        assert mine.tobytes() == theirs.tobytes(), f"seed {seed}: bytes differ"


def test_other_forms_keep_the_matmul_step() -> None:
    work = _work({})
    assert RowsByTile.of(np.zeros((7, 1, 1), F32), np.zeros((7, 1, 64), F32), np.zeros((1, 64), F32), 1.0, work) is None  # sdot
    assert RowsByTile.of(np.zeros((7, 2, 5), F32), np.zeros((7, 2, 64), F32), np.zeros((5, 64), F32), 1.0, work) is None
    assert RowsByTile.of(np.zeros((7, 1, 5), np.float16), np.zeros((7, 1, 64), F32), np.zeros((5, 64), F32), 1.0, work) is None
    assert Outer.of(np.zeros((7, 1, 5), F32), np.zeros((7, 1, 2), F32), np.zeros((2, 5), F32), 1.0, False, work) is None
    assert ProbsByTile.of(np.zeros((7, 1, 1), F32), np.zeros((7, 1, 64), F32), np.zeros((64, 1), F32), 1.0, True, work) is None  # sdot
    assert ProbsByTile.of(np.zeros((7, 2, 5), F32), np.zeros((7, 2, 64), F32), np.zeros((64, 5), F32), 1.0, True, work) is None


@pytest.mark.parametrize("special", [0.0, 0.02])
@pytest.mark.parametrize("accumulate", [True, False])
@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("dtypes", [(F32, BF16, F32), (BF16, BF16, BF16), (F32, F32, BF16)])
@pytest.mark.parametrize("heads, width", [(7, 64), (14, 128), (1, 3)])
def test_outer(heads: int, width: int, dtypes: tuple[np.dtype, np.dtype, np.dtype], alpha: float, accumulate: bool, special: float) -> None:
    lhs_type, rhs_type, out_type = dtypes
    for seed in range(4):
        rng = np.random.default_rng(seed)
        values = random_memory(rng, 4 * (heads + 2 * width + heads * width), special if seed % 2 else 0.0).view(BF16).astype(np.float32)
        lhs = values[:heads].reshape(heads, 1, 1).astype(lhs_type)
        rhs = values[heads : heads + 2 * width].reshape(1, 2 * width)[:, ::2].astype(rhs_type)  # a strided row
        start = values[heads + 2 * width : heads + 2 * width + heads * width].reshape(heads, 1, width).astype(out_type)
        mine, theirs = start.copy(), start.copy()
        step = Outer.of(mine, lhs, rhs, alpha, accumulate, _work({}))
        assert step is not None
        with np.errstate(all="ignore"):
            step()
            sem.matmul(theirs, lhs, rhs, alpha=alpha, accumulate=accumulate)
        assert mine.tobytes() == theirs.tobytes(), f"seed {seed}: bytes differ"


@pytest.mark.skipif(SGEMV_COLS is None, reason="numpy's BLAS not found: the plan keeps MatmulStep")
@pytest.mark.parametrize("special", [0.0, 0.02])
@pytest.mark.parametrize("accumulate", [True, False])
@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("dtypes", [(F32, BF16, BF16), (BF16, BF16, F32), (F32, F32, BF16)])
@pytest.mark.parametrize("shape", [(7, 255, 64), (14, 100, 64), (2, 37, 128), (1, 2, 3)])
def test_probabilities_times_the_value_tile(
    shape: tuple[int, int, int], dtypes: tuple[np.dtype, np.dtype, np.dtype], alpha: float, accumulate: bool, special: float,
) -> None:
    """`out (H, 1, N) (+)= alpha * p (H, 1, K) @ v (K, N)`, the value tile one KV head of a
    strided cache: `npu_semantics.matmul`'s bytes (NaN inputs through its fallback)."""
    heads, depth, width = shape
    lhs_type, rhs_type, out_type = dtypes
    for seed in range(4):
        rng = np.random.default_rng(seed)
        values = random_memory(rng, 8 * (heads * depth + 2 * depth * width + heads * width), special if seed % 2 else 0.0)
        values = values.view(BF16).astype(np.float32)
        lhs = values[: heads * depth].reshape(heads, 1, depth).astype(lhs_type)
        tile = values[heads * depth : heads * depth + 2 * depth * width].reshape(depth, 2 * width).astype(rhs_type)
        rhs = tile[:, width:]
        at = heads * depth + 2 * depth * width
        start = values[at : at + heads * width].reshape(heads, 1, width).astype(out_type)
        mine, theirs = start.copy(), start.copy()
        step = ProbsByTile.of(mine, lhs, rhs, alpha, accumulate, _work({}))
        assert step is not None
        with np.errstate(all="ignore"):
            step()
            sem.matmul(theirs, lhs, rhs, alpha=alpha, accumulate=accumulate)
        assert mine.tobytes() == theirs.tobytes(), f"seed {seed}: bytes differ"
