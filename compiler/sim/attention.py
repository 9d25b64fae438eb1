"""The decode attention's small float matmuls in one compiled call each, bit-identical to
`npu_semantics.matmul`.

A decode step's `scores = alpha * q @ k_tile^T` multiplies each head's query row `[1, K]`
by the transpose of a bf16 cache tile `[N, K]` held in OCM. `np.matmul` of the widened
operands runs that as one `cblas_sgemv` per head (numpy's vector @ matrix case: column
major, transposed, the tile's rows contiguous), which is the call `axc.sim.blas.gemv_rows`
makes; the widening, the calls, the scaling and the store by `put` then happen in one
numba kernel instead of a dozen numpy calls. `RowsByTile.of` returns None where the
operands are not of that form (or numpy's BLAS was not found), and the plan keeps its
`MatmulStep`. The new token's value row weighted by its probability, `out (H, 1, N) +=
p (H, 1, 1) @ v (1, N)`, is numpy's loop without BLAS (`0 + p * v` per element):
`Outer` computes it the same way. The weighted sum of the value tile, `out (H, 1, N) +=
p (H, 1, K) @ v (K, N)`, is one `cblas_sgemv` per head too (a row times a matrix: column
major, not transposed), `ProbsByTile` makes those calls (`axc.sim.blas.gemv_cols`).

```python
step = RowsByTile.of(out, lhs, rhs, alpha, work)   # out (H, 1, N) = alpha * lhs (H, 1, K) @ rhs (N, K)^T
step()
```
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numba
import numpy as np

from axc import npu_semantics as sem
from axc.sim.blas import SGEMV, SGEMV_COLS, gemv_cols, gemv_rows
from axc.sim.vector import BF16, F32, Step, Work, any_nan, as_2d, distinct, get, put


def per_head(out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, transposed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """2-D views of `out (H, 1, N)`, `lhs (H, 1, K)` and the tile `rhs` (`(N, K)` when
    `transposed`, else `(K, N)`), fp32 or bf16, when the product is numpy's one
    `cblas_sgemv` per head (K and N of 2 or more: no sdot, no loop without BLAS) and `out`
    is written once per element; else None."""
    if lhs.ndim != 3 or rhs.ndim != 2 or out.ndim != 3 or lhs.shape[1] != 1:
        return None
    heads, depth = lhs.shape[0], lhs.shape[2]
    width, inner = (rhs.shape[0], rhs.shape[1]) if transposed else (rhs.shape[1], rhs.shape[0])
    if inner != depth or out.shape != (heads, 1, width) or width < 2 or depth < 2:
        return None
    if any(x.dtype not in (F32, BF16) for x in (out, lhs, rhs)) or not distinct(out):
        return None
    out2, lhs2, rhs2 = as_2d(out, out.shape), as_2d(lhs, lhs.shape), as_2d(rhs, rhs.shape)
    if out2 is None or lhs2 is None or rhs2 is None:
        return None
    return out2, lhs2, rhs2


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rows_by_tile(
    address: int, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, a: np.ndarray, b: np.ndarray, result: np.ndarray,
    alpha: np.float32, scaled: bool,
) -> None:
    heads, depth = a.shape
    for h in range(heads):
        for k in range(depth):
            a[h, k] = get(lhs, h, k)
    for n in range(b.shape[0]):
        for k in range(depth):
            b[n, k] = get(rhs, n, k)
    for h in range(heads):
        gemv_rows(address, b, a[h], result[h])
    for h in range(heads):
        for n in range(b.shape[0]):
            value = result[h, n]
            if scaled:
                value = value * alpha
            put(out, h, n, value)


@dataclass(frozen=True)
class RowsByTile:
    """`out (H, 1, N) = alpha * lhs (H, 1, K) @ rhs (N, K)^T` in fp32, stored to `out`'s
    dtype (the `MatmulStep` of a transposed float tile, without bias or accumulation)."""

    address: int
    out: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    a: np.ndarray
    b: np.ndarray
    result: np.ndarray
    alpha: np.float32
    scaled: bool

    def __call__(self) -> None:
        _rows_by_tile(self.address, self.out, self.lhs, self.rhs, self.a, self.b, self.result, self.alpha, self.scaled)

    @classmethod
    def of(cls, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, alpha: float, work: Work) -> RowsByTile | None:
        """The step, or None where the operands are not of its form."""
        views = per_head(out, lhs, rhs, transposed=True)
        if SGEMV is None or views is None:
            return None
        out2, lhs2, rhs2 = views
        heads, depth, rows = lhs.shape[0], lhs.shape[2], rhs.shape[0]
        return cls(
            SGEMV, out2, lhs2, rhs2, work("scores lhs", (heads, depth)), work("scores tile", (rows, depth)),
            work("scores", (heads, rows)), np.float32(alpha), alpha != 1.0,
        )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _outer(out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, result: np.ndarray, alpha: np.float32, scaled: bool, accumulate: bool) -> bool:
    if any_nan(lhs) or any_nan(rhs) or accumulate and any_nan(out):
        return False
    heads, width = result.shape
    for h in range(heads):
        for n in range(width):
            value = np.float32(0) + get(lhs, h, 0) * get(rhs, 0, n)
            if scaled:
                value = value * alpha
            result[h, n] = value
    for h in range(heads):
        for n in range(width):
            value = result[h, n]
            if accumulate:
                value = get(out, h, n) + value
            put(out, h, n, value)
    return True


@dataclass(frozen=True)
class Outer:
    """`out (H, 1, N) (+)= alpha * lhs (H, 1, 1) @ rhs (1, N)` in fp32, stored to `out`'s
    dtype: numpy's matmul loop for an inner dimension of one (`0 + a * b`); an operand
    holding a NaN runs `npu_semantics.matmul` (which NaN a NaN * NaN keeps is the loop's)."""

    out: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    result: np.ndarray
    alpha: np.float32
    scaled: bool
    accumulate: bool
    fallback: Step

    def __call__(self) -> None:
        if not _outer(self.out, self.lhs, self.rhs, self.result, self.alpha, self.scaled, self.accumulate):
            self.fallback()

    @classmethod
    def of(cls, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, alpha: float, accumulate: bool, work: Work) -> Outer | None:
        """The step, or None where the operands are not of its form."""
        if lhs.ndim != 3 or rhs.ndim != 2 or out.ndim != 3 or lhs.shape[1:] != (1, 1) or rhs.shape[0] != 1:
            return None
        heads, width = lhs.shape[0], rhs.shape[1]
        if out.shape != (heads, 1, width) or any(x.dtype not in (F32, BF16) for x in (out, lhs, rhs)) or not distinct(out):
            return None
        out2, lhs2, rhs2 = as_2d(out, out.shape), as_2d(lhs, lhs.shape), as_2d(rhs, rhs.shape)
        if out2 is None or lhs2 is None or rhs2 is None:
            return None
        fallback = partial(sem.matmul, out, lhs, rhs, alpha=alpha, accumulate=accumulate)
        return cls(out2, lhs2, rhs2, work("outer", (heads, width)), np.float32(alpha), alpha != 1.0, accumulate, fallback)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _probs_by_tile(
    address: int, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, a: np.ndarray, b: np.ndarray, result: np.ndarray,
    alpha: np.float32, scaled: bool, accumulate: bool,
) -> bool:
    if any_nan(lhs) or any_nan(rhs) or accumulate and any_nan(out):
        return False
    heads, depth = a.shape
    for h in range(heads):
        for k in range(depth):
            a[h, k] = get(lhs, h, k)
    for k in range(depth):
        for n in range(b.shape[1]):
            b[k, n] = get(rhs, k, n)
    for h in range(heads):
        gemv_cols(address, b, a[h], result[h])
    for h in range(heads):
        for n in range(b.shape[1]):
            value = result[h, n]
            if scaled:
                value = value * alpha
            if accumulate:
                value = get(out, h, n) + value
            put(out, h, n, value)
    return True


@dataclass(frozen=True)
class ProbsByTile:
    """`out (H, 1, N) (+)= alpha * lhs (H, 1, K) @ rhs (K, N)` in fp32, stored to `out`'s
    dtype (the value tile weighted by the probabilities): numpy's one `cblas_sgemv` per
    head; an operand holding a NaN runs `npu_semantics.matmul`."""

    address: int
    out: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    a: np.ndarray
    b: np.ndarray
    result: np.ndarray
    alpha: np.float32
    scaled: bool
    accumulate: bool
    fallback: Step

    def __call__(self) -> None:
        if not _probs_by_tile(
            self.address, self.out, self.lhs, self.rhs, self.a, self.b, self.result, self.alpha, self.scaled, self.accumulate,
        ):
            self.fallback()

    @classmethod
    def of(cls, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, alpha: float, accumulate: bool, work: Work) -> ProbsByTile | None:
        """The step, or None where the operands are not of its form."""
        views = per_head(out, lhs, rhs, transposed=False)
        if SGEMV_COLS is None or views is None:
            return None
        out2, lhs2, rhs2 = views
        heads, depth, width = lhs.shape[0], lhs.shape[2], rhs.shape[1]
        fallback = partial(sem.matmul, out, lhs, rhs, alpha=alpha, accumulate=accumulate)
        return cls(
            SGEMV_COLS, out2, lhs2, rhs2, work("probs lhs", (heads, depth)), work("value tile", (depth, width)),
            work("weighted", (heads, width)), np.float32(alpha), alpha != 1.0, accumulate, fallback,
        )
