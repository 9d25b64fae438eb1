"""A group's inputs copied into its staged input buffers, as `np.copyto` casts them.

A decode step given an fp32 K/V cache (a host that keeps it so) stages every layer's
whole cache into bf16: ml_dtypes converts one element at a time (some 35 us for a
255 x 128 cache), so a large fp32 -> bf16 input goes through the vector steps' compiled
cast (`axc.sim.vector.cast_into`, ml_dtypes' bits); smaller ones and every other case are
`np.copyto`, whose per-call cost is lower between two plans' steps (caches cold).

```python
stage(staged, value)   # np.copyto(staged, value.reshape(staged.shape), casting="unsafe")
```
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from axc.sim.vector import cast_into

BF16 = np.dtype(ml_dtypes.bfloat16)
KERNEL_MIN = 1 << 13
"""fp32 elements from which the compiled cast beats `np.copyto` (a hidden row, a decode
mask: `np.copyto`; a K/V cache: the compiled cast)."""


def stage(staged: np.ndarray, value: np.ndarray) -> None:
    """`value` into the buffer `staged` (floats through fp32, as the runtime's host does)."""
    value = np.asarray(value)
    if staged.dtype.kind in "fV" and value.dtype.kind in "fV" and value.dtype != staged.dtype:
        value = value.astype(np.float32, copy=False)
    if (
        staged.dtype == BF16 and value.dtype == np.float32 and value.size == staged.size >= KERNEL_MIN
        and value.flags.c_contiguous
    ):
        cast_into(staged.reshape(1, -1), value.reshape(1, -1))
    else:
        np.copyto(staged, value.reshape(staged.shape), casting="unsafe")
