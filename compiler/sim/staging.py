"""A group's inputs copied into its staged input buffers, as `np.copyto` casts them.

A decode step given an fp32 K/V cache (a host that keeps it so) stages every layer's
whole cache into bf16: ml_dtypes converts one element at a time (some 35 us for a
255 x 128 cache), so a large fp32 -> bf16 input is a compiled loop with the same rounding
(to nearest, ties to even, overflow to infinity, subnormals kept) and the same NaN (quiet,
sign kept, payload dropped); smaller ones and every other case are `np.copyto`, whose
per-call cost is lower between two plans' steps (caches cold).

```python
stage(staged, value)   # np.copyto(staged, value.reshape(staged.shape), casting="unsafe")
```
"""

from __future__ import annotations

import ml_dtypes
import numba
import numpy as np

BF16 = np.dtype(ml_dtypes.bfloat16)
KERNEL_MIN = 1 << 13
"""fp32 elements from which the compiled cast beats `np.copyto` (a hidden row, a decode
mask: `np.copyto`; a K/V cache: the loop)."""


@numba.njit(cache=True, nogil=True)
def _bf16_bits(src: np.ndarray, dst: np.ndarray) -> None:
    """`dst` (uint16) = the bf16 bits of the fp32 bits `src` (uint32), as ml_dtypes rounds."""
    for i in range(src.size):
        bits = src[i]
        if (bits & 0x7FFFFFFF) > 0x7F800000:
            dst[i] = ((bits >> 16) & 0x8000) | 0x7FC0
        else:
            dst[i] = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


def to_bf16(dst: np.ndarray, src: np.ndarray) -> None:
    """`np.copyto(dst, src, casting="unsafe")` for C-ordered fp32 `src` and bf16 `dst` of one size."""
    _bf16_bits(src.reshape(-1).view(np.uint32), dst.reshape(-1).view(np.uint16))


def stage(staged: np.ndarray, value: np.ndarray) -> None:
    """`value` into the buffer `staged` (floats through fp32, as the runtime's host does)."""
    value = np.asarray(value)
    if staged.dtype.kind in "fV" and value.dtype.kind in "fV" and value.dtype != staged.dtype:
        value = value.astype(np.float32, copy=False)
    if (
        staged.dtype == BF16 and value.dtype == np.float32 and value.size == staged.size >= KERNEL_MIN
        and value.flags.c_contiguous
    ):
        to_bf16(staged, value)
    else:
        np.copyto(staged, value.reshape(staged.shape), casting="unsafe")
