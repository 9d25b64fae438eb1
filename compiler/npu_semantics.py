"""What every `npu` op does, on numpy arrays: one place for the interpreter and the simulator.

Memory is flat: a buffer (or a DDR tensor) is a 1-D array of its storage dtype and an op
reads/writes strided views of it (`view`). Compute ops load their inputs as fp32, compute
with the reference kernels of `axc.kernels` (fp32 accumulation), and store by rounding to
the destination's storage dtype (nearest even). Weight tiles are dequantized exactly with
`axc.quantization` before the product. `Counters` tallies what a program costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np
from numpy.lib.stride_tricks import as_strided
from xdsl.dialects.builtin import Float8E4M3FNType, Float8E5M2Type
from xdsl.ir import Attribute

from axc import kernels
from axc.dtypes import numpy_dtype
from axc.quantization import QuantizedWeight, WeightSpec, dequantize

Array = np.ndarray
FILL_BYTE = 0xFF
"""Fresh on-chip memory reads as NaN (0xFF bytes), so reading before writing shows."""


def storage_dtype(element: Attribute) -> np.dtype:
    """The numpy dtype that holds one element of a buffer or DDR tensor."""
    if isinstance(element, Float8E4M3FNType):
        return np.dtype(ml_dtypes.float8_e4m3fn)
    if isinstance(element, Float8E5M2Type):
        return np.dtype(ml_dtypes.float8_e5m2)
    return numpy_dtype(element)


def fresh(numel: int, dtype: np.dtype) -> Array:
    """Uninitialised memory (NaN-filled for floats)."""
    raw = np.full(numel * dtype.itemsize, FILL_BYTE, np.uint8)
    return raw.view(dtype)


def flat(array: Array, dtype: np.dtype) -> Array:
    """A DDR value as flat storage of `dtype` (exact when `array` came from that dtype)."""
    array = np.asarray(array)
    if array.dtype != dtype:
        array = array.astype(dtype)
    return np.ascontiguousarray(array).reshape(-1)


def view(memory: Array, offset: int, sizes: Sequence[int], strides: Sequence[int]) -> Array:
    """The strided view `memory[offset + Σ i_d * strides[d]]`, bounds-checked."""
    last = offset + sum((s - 1) * t for s, t in zip(sizes, strides))
    if offset < 0 or last >= memory.size:
        raise IndexError(f"view [{offset}, {last}] outside a buffer of {memory.size} elements")
    item = memory.itemsize
    # Stride the raw bits, then view them: as_strided cannot rebuild ml_dtypes' bf16/fp8.
    raw = as_strided(memory[offset:].view(f"u{item}"), tuple(sizes), tuple(t * item for t in strides), writeable=True)
    return raw.view(memory.dtype)


def load(v: Array) -> Array:
    """Read a view as fp32 (integers keep their type)."""
    if v.dtype.kind in "iu":
        return v
    return v.astype(np.float32)


def store(v: Array, value: Array) -> None:
    """Write `value` into a view, rounding to its storage dtype."""
    np.copyto(v, np.asarray(value, np.float32) if v.dtype.kind not in "iu" else value, casting="unsafe")  # broadcasts, casts


def nbytes(v: Array) -> int:
    return v.size * v.itemsize


# --- ops -------------------------------------------------------------------------------


def dma(dst: Array, src: Array) -> None:
    """Byte-exact copy between views with equal element counts."""
    dst[...] = src.reshape(dst.shape)


def dequantize_tile(
    codes: Array, fmt: str, scales: Array | None, zeros: Array | None, group: int
) -> Array:
    """fp32 `[N, K]` of a weight tile (`codes` `[N, K]`, or `[N, K/2]` bytes for s4)."""
    if fmt == "float":
        return load(codes)
    rows = codes.shape[0]
    columns = codes.shape[1] * (2 if fmt == "s4" else 1)
    assert scales is not None
    spec = WeightSpec(
        kind=fmt,
        out_features=rows,
        in_features=columns,
        group=group,
        asym=zeros is not None,
        scale_type={"float16": "f16", "bfloat16": "bf16", "float32": "f32"}[scales.dtype.name],
    )
    shape = spec.scales_shape
    weight = QuantizedWeight(
        spec,
        np.ascontiguousarray(codes),
        np.ascontiguousarray(scales).reshape(shape),
        None if zeros is None else np.ascontiguousarray(zeros).reshape(shape),
    )
    return dequantize(weight)


def matmul(
    out: Array,
    lhs: Array,
    rhs: Array,
    *,
    fmt: str = "float",
    scales: Array | None = None,
    zeros: Array | None = None,
    bias: Array | None = None,
    group: int = 0,
    alpha: float = 1.0,
    transpose_b: bool = False,
    accumulate: bool = False,
) -> int:
    """`out (+)= alpha * lhs @ rhs (+ bias)` in fp32; returns the MAC count."""
    b = load(rhs) if fmt == "float" else dequantize_tile(rhs, fmt, scales, zeros, group)
    return product(out, lhs, b, bias=bias, alpha=alpha, transpose_b=transpose_b, accumulate=accumulate)


def product(
    out: Array,
    lhs: Array,
    b: Array,
    *,
    bias: Array | None = None,
    alpha: float = 1.0,
    transpose_b: bool = False,
    accumulate: bool = False,
) -> int:
    """`matmul` on an already dequantized fp32 right-hand side `b` (the simulator caches
    dequantized weight tiles); returns the MAC count."""
    a = load(lhs)
    result = np.matmul(a, np.swapaxes(b, -1, -2) if transpose_b else b)
    if alpha != 1.0:
        result = result * np.float32(alpha)
    if bias is not None:
        result = result + load(bias)
    if accumulate:
        result = load(out) + result
    store(out, result)
    k = a.shape[-1]
    return int(out.size * k)


def fill(out: Array, value: float) -> None:
    store(out, np.asarray(value, np.float32))


def cast(out: Array, x: Array) -> None:
    store(out, load(x))


def binary(kind: str, out: Array, lhs: Array, rhs: Array) -> None:
    a, b = load(lhs), load(rhs)
    store(out, {"add": np.add, "mul": np.multiply, "div": np.divide}[kind](a, b))


def act(out: Array, x: Array, kind: str) -> None:
    store(out, kernels.activation(kind, load(x)))


def softcap(out: Array, x: Array, cap: float) -> None:
    store(out, kernels.softcap(load(x), cap))


def iota(out: Array) -> None:
    store(out, np.arange(out.size).reshape(out.shape))


def window_mask(out: Array, scores: Array, query_positions: Array, key_positions: Array, window: int) -> None:
    store(out, load(scores) + kernels.window_mask(np.asarray(query_positions), np.asarray(key_positions), window))


def act_mul(out: Array, gate: Array, up: Array, kind: str) -> None:
    """`act(gate) * up`; the activation is rounded to `out`'s dtype first, as a stored
    intermediate of that type would be."""
    activated = kernels.activation(kind, load(gate)).astype(out.dtype).astype(np.float32)
    store(out, activated * load(up))


def rms_norm(out: Array, x: Array, weight: Array, eps: float) -> None:
    store(out, kernels.rms_norm(load(x), load(weight), eps))


def head_norm(out: Array, x: Array, weight: Array, eps: float, head_dim: int) -> None:
    store(out, kernels.head_norm(load(x), load(weight), eps, head_dim))


def add_rms_norm(total: Array, out: Array, lhs: Array, rhs: Array, weight: Array, eps: float) -> None:
    """`total = lhs + rhs` (rounded to its dtype), `out = rms_norm(total)`."""
    store(total, load(lhs) + load(rhs))
    store(out, kernels.rms_norm(load(total), load(weight), eps))


def layer_norm(out: Array, x: Array, weight: Array, bias: Array | None, eps: float) -> None:
    store(out, kernels.layer_norm(load(x), load(weight), None if bias is None else load(bias), eps))


def rope(
    out: Array, x: Array, positions: Array, num_heads: int, spec: kernels.RopeSpec, ext_factors: Array | None = None
) -> None:
    rows = load(x)[None]
    table = None if ext_factors is None else load(ext_factors)
    store(out, kernels.rope(rows, np.asarray(positions)[None], num_heads, spec, table)[0])


def online_softmax(probs: Array, running_max: Array, running_sum: Array, corr: Array, scores: Array) -> None:
    """One online-softmax step over the last axis (see `npu.online_softmax`)."""
    s = load(scores)
    old_max = load(running_max)
    new_max = np.maximum(old_max, np.max(s, axis=-1, keepdims=True))
    correction = np.exp(old_max - new_max)
    p = np.exp(s - new_max)
    store(running_sum, load(running_sum) * correction + np.sum(p, axis=-1, keepdims=True))
    store(running_max, new_max)
    store(corr, correction)
    store(probs, p)


def gather(out: Array, x: Array, indices: Array) -> None:
    store(out, load(x)[..., np.asarray(indices, np.int64)])


def topk(values: Array, indices: Array, x: Array, k: int) -> None:
    probs, order = kernels.topk(load(x), k)
    store(values, probs)
    store(indices, order)


# --- costs -----------------------------------------------------------------------------


@dataclass
class Counters:
    """What one function cost: DDR traffic, matrix MACs, vector element ops."""

    ddr_read: int = 0
    ddr_write: int = 0
    dma_ops: int = 0
    macs: dict[str, int] = field(default_factory=dict)  # by weight format
    vector_ops: int = 0
    barriers: int = 0
    calls: int = 0

    @property
    def matrix_macs(self) -> int:
        return sum(self.macs.values())

    def add_macs(self, fmt: str, count: int) -> None:
        self.macs[fmt] = self.macs.get(fmt, 0) + count

    def per_call(self) -> Counters:
        n = max(self.calls, 1)
        return Counters(
            self.ddr_read // n,
            self.ddr_write // n,
            self.dma_ops // n,
            {k: v // n for k, v in self.macs.items()},
            self.vector_ops // n,
            self.barriers // n,
            1,
        )
