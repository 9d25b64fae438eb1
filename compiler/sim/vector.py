"""Vector steps of an execution plan specialised at plan time, bit-identical to
`axc.npu_semantics`.

`npu_semantics` loads every operand as a fresh fp32 array, computes with numpy and stores
by rounding to the destination's dtype: a dozen small numpy calls and temporaries per
step. The steps here do the same operations in one or two numba kernels over the views
themselves (bf16 read as its bits), around the one numpy call each transcendental needs
(`np.exp` on a contiguous fp32 work array: numpy's own SIMD loop, as on the semantics'
fresh temporaries). Why the bits are the same:

- `+ - * /`, `sqrt` and the casts between fp32 and fp64 are exactly rounded, and numba does
  not contract `a * b + c` into an fma without fast-math; every constant and accumulator
  is fp32 as in numpy.
- bf16 -> fp32 is the bits shifted; fp32 -> bf16 rounds to nearest even and turns a NaN
  into the quiet NaN of its sign, as ml_dtypes does (`bf16_bits`; the same bits for all
  2^32 fp32 patterns, checked once; the unit test checks every bf16 and chosen and random
  fp32 patterns).
- sums over the last axis are numpy's pairwise summation (`pairwise`), in its order.
- `np.maximum`'s choice between -0.0 and +0.0 and which NaN a NaN-and-NaN operation keeps
  depend on the loop: a step whose inputs hold a NaN, or (softmax) whose new maximum is a
  zero, runs its `npu_semantics` call instead (`fallback`).

Operands are viewed as 2-D arrays (rows, last axis), inputs broadcast to the output's
shape. A step is specialised only when its dtypes are fp32 or bf16 and every output is
either disjoint from every other operand or the very same view (elementwise in place);
otherwise `vector_step` returns None and the plan keeps the `npu_semantics` call.
`products_step` is act_mul over a batch's matmul products (the MLP's gate and up tiles);
`fuse_steps` folds an in-place `scores += mask` into the online softmax after it.

```python
step = vector_step("act_mul", views, {"kind": "silu"}, fallback, workspace.get)   # None: keep `fallback`
step()                                                                          # same bits as fallback()
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import ml_dtypes
import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from axc import kernels
from axc import npu_semantics as sem

Step = Callable[[], object]
Work = Callable[[str, tuple[int, ...]], np.ndarray]
"""`Workspace.get`: a shared fp32 work array by role and shape (steps run one at a time)."""
BF16 = np.dtype(ml_dtypes.bfloat16)
F32 = np.dtype(np.float32)


@intrinsic
def f32_of_bits(typingctx, bits):
    """The fp32 whose bits are the low 32 bits of the integer `bits`."""
    if not isinstance(bits, types.Integer):
        return None
    sig = types.float32(bits)

    def codegen(context, builder, signature, args):
        value = args[0]
        if bits.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        elif bits.bitwidth < 32:
            value = builder.zext(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return sig, codegen


@intrinsic
def bits_of_f32(typingctx, value):
    """The bits of the fp32 `value` as a uint32."""
    if value != types.float32:
        return None
    sig = types.uint32(value)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@numba.njit(cache=True, nogil=True, error_model="numpy")
def bf16_bits(value: np.float32) -> np.uint16:
    """ml_dtypes' fp32 -> bf16: round to nearest even; a NaN becomes 0x7FC0 with its sign."""
    bits = np.uint64(bits_of_f32(value))  # type: ignore[call-arg]  # numba supplies the typing context
    nan = (bits >> np.uint64(16)) & np.uint64(0x8000) | np.uint64(0x7FC0)
    even = (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return np.uint16(nan if value != value else even)  # a select, not a branch: loops vectorize


@numba.njit(cache=True, nogil=True, error_model="numpy")
def bf16_value(bits: np.uint16) -> np.float32:
    return f32_of_bits(np.uint32(bits) << np.uint32(16))  # type: ignore[call-arg]  # numba supplies the typing context


def get(a: np.ndarray, i: int, j: int) -> np.float32:
    """`a[i, j]` as fp32 (bf16 arrays are passed as their uint16 bits)."""
    raise NotImplementedError("numba only")


def put(out: np.ndarray, i: int, j: int, value: np.float32) -> None:
    """`out[i, j] = value` rounded to `out`'s dtype."""
    raise NotImplementedError("numba only")


def rounded(value: np.float32, like: np.ndarray) -> np.float32:
    """`value` rounded to the dtype of `like` and read back as fp32."""
    raise NotImplementedError("numba only")


@overload(get)
def _get(a, i, j):
    if a.dtype == types.uint16:
        return lambda a, i, j: bf16_value(a[i, j])
    if a.dtype == types.float32:
        return lambda a, i, j: a[i, j]
    return None


@overload(put)
def _put(out, i, j, value):
    if out.dtype == types.uint16:
        def bf16(out, i, j, value):
            out[i, j] = bf16_bits(value)
        return bf16
    if out.dtype == types.float32:
        def f32(out, i, j, value):
            out[i, j] = value
        return f32
    return None


@overload(rounded)
def _rounded(value, like):
    if like.dtype == types.uint16:
        return lambda value, like: bf16_value(bf16_bits(value))
    if like.dtype == types.float32:
        return lambda value, like: value
    return None


PAIRWISE_BLOCK = 128
"""numpy's `PW_BLOCKSIZE`."""


@numba.njit("float32(float32[::1], int64, int64)", cache=True, nogil=True, error_model="numpy")  # typed: numba compiles recursion eagerly
def pairwise(a: np.ndarray, start: int, n: int) -> np.float32:
    """numpy's pairwise sum of the fp32 `a[start : start + n]` (`np.add.reduce` adds it to 0)."""
    if n < 8:
        res = np.float32(-0.0)
        for i in range(n):
            res += a[start + i]
        return res
    if n <= PAIRWISE_BLOCK:
        r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
        r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
        i = 8
        while i < n - n % 8:
            k = start + i
            r0 += a[k]
            r1 += a[k + 1]
            r2 += a[k + 2]
            r3 += a[k + 3]
            r4 += a[k + 4]
            r5 += a[k + 5]
            r6 += a[k + 6]
            r7 += a[k + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[start + i]
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return pairwise(a, start, half) + pairwise(a, start + half, n - half)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def any_nan(a: np.ndarray) -> bool:
    for i in range(a.shape[0]):
        found = False
        for j in range(a.shape[1]):  # no exit inside the row, so the loop vectorizes
            v = get(a, i, j)
            found |= v != v
        if found:
            return True
    return False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def cast_2d(out: np.ndarray, x: np.ndarray) -> None:
    """`np.copyto(out, x, casting="unsafe")` between fp32 and bf16 bits (2-D views)."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            put(out, i, j, get(x, i, j))


def cast_into(out: np.ndarray, x: np.ndarray) -> None:
    """`np.copyto(out, x, casting="unsafe")` for 2-D views of one shape, compiled between
    fp32 and bf16 (ml_dtypes converts one element at a time)."""
    if out.ndim == 2 and out.shape == x.shape and {out.dtype, x.dtype} == {F32, BF16}:
        cast_2d(_bits(out), _bits(x))
    else:
        np.copyto(out, x, casting="unsafe")


ADD, MUL, DIV = 0, 1, 2
BINARY = {"add": ADD, "mul": MUL, "div": DIV}


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _binary(kind: int, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray) -> bool:
    if any_nan(lhs) or any_nan(rhs):
        return False
    rows, cols = out.shape
    if kind == ADD:  # a loop per kind: no branch inside, so each vectorizes
        for i in range(rows):
            for j in range(cols):
                put(out, i, j, get(lhs, i, j) + get(rhs, i, j))
    elif kind == MUL:
        for i in range(rows):
            for j in range(cols):
                put(out, i, j, get(lhs, i, j) * get(rhs, i, j))
    else:
        for i in range(rows):
            for j in range(cols):
                put(out, i, j, get(lhs, i, j) / get(rhs, i, j))
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _negated(gate: np.ndarray, up: np.ndarray, work: np.ndarray) -> bool:
    if any_nan(gate) or any_nan(up):
        return False
    for i in range(work.shape[0]):
        for j in range(work.shape[1]):
            work[i, j] = -get(gate, i, j)
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _silu_mul(out: np.ndarray, gate: np.ndarray, up: np.ndarray, exp_neg: np.ndarray) -> None:
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            g = get(gate, i, j)
            activated = rounded(g / (np.float32(1) + exp_neg[i, j]), out)
            put(out, i, j, activated * get(up, i, j))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _negated_products(products: np.ndarray, gate: int, up: int, gate_like: np.ndarray, up_like: np.ndarray, work: np.ndarray) -> bool:
    """`_negated` of the products `products[:, gate]` and `products[:, up]` as stored in the
    dtypes of `gate_like` and `up_like`."""
    found = False
    for k in range(products.shape[0]):
        for i in range(products.shape[2]):
            g, u = products[k, gate, i], products[k, up, i]
            found |= (g != g) | (u != u)
            work[k, i] = -rounded(g, gate_like)
    return not found


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _silu_mul_products(
    out: np.ndarray, products: np.ndarray, gate: int, up: int, gate_like: np.ndarray, up_like: np.ndarray, exp_neg: np.ndarray
) -> None:
    for k in range(products.shape[0]):
        for i in range(products.shape[2]):
            g = rounded(products[k, gate, i], gate_like)
            activated = rounded(g / (np.float32(1) + exp_neg[k, i]), out)
            put(out, k, i, activated * rounded(products[k, up, i], up_like))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rms_row(out: np.ndarray, x: np.ndarray, weight: np.ndarray, i: int, squares: np.ndarray, eps: np.float32) -> None:
    n = x.shape[1]
    for j in range(n):
        v = get(x, i, j)
        squares[j] = v * v
    variance = np.float32(np.float64(np.float32(0) + pairwise(squares, 0, n)) / np.float64(n))
    root = np.sqrt(variance + eps)
    for j in range(n):
        put(out, i, j, (get(x, i, j) / root) * get(weight, i, j))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rms_norm(out: np.ndarray, x: np.ndarray, weight: np.ndarray, squares: np.ndarray, eps: np.float32) -> bool:
    if any_nan(x) or any_nan(weight):
        return False
    for i in range(x.shape[0]):
        _rms_row(out, x, weight, i, squares, eps)
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _add_rms_norm(
    total: np.ndarray, out: np.ndarray, lhs: np.ndarray, rhs: np.ndarray, weight: np.ndarray, squares: np.ndarray, eps: np.float32
) -> bool:
    if any_nan(lhs) or any_nan(rhs) or any_nan(weight):
        return False
    for i in range(total.shape[0]):
        for j in range(total.shape[1]):
            put(total, i, j, get(lhs, i, j) + get(rhs, i, j))
    for i in range(total.shape[0]):
        _rms_row(out, total, weight, i, squares, eps)
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rope(
    out: np.ndarray, x: np.ndarray, cos: np.ndarray, sin: np.ndarray, heads: int, head_dim: int, interleaved: bool,
    work: np.ndarray,
) -> bool:
    if any_nan(x):
        return False
    rotary = cos.shape[1]
    half = rotary // 2
    for t in range(x.shape[0]):
        for h in range(heads):
            base = h * head_dim
            for j in range(rotary):
                if interleaved:
                    partner = -get(x, t, base + j + 1) if j % 2 == 0 else get(x, t, base + j - 1)
                else:
                    partner = -get(x, t, base + j + half) if j < half else get(x, t, base + j - half)
                work[j] = get(x, t, base + j) * cos[t, j] + partner * sin[t, j]
            for j in range(rotary, head_dim):
                work[j] = get(x, t, base + j)
            for j in range(head_dim):
                put(out, t, base + j, work[j])
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _softmax_shift(
    scores: np.ndarray, mask: np.ndarray, masked: bool, old_max: np.ndarray, work: np.ndarray, new_max: np.ndarray
) -> bool:
    """`work` = scores (`masked`: + mask, as the fp32 add before would store them) - new
    max, row by row, then old max - new max (the correction's exponent)."""
    if any_nan(scores) or any_nan(old_max) or masked and any_nan(mask):
        return False
    rows, n = scores.shape
    for i in range(rows):
        base = i * n
        for j in range(n):
            work[base + j] = get(scores, i, j) + get(mask, i, j) if masked else get(scores, i, j)
        top = work[base]
        for j in range(1, n):
            top = max(top, work[base + j])
        old = get(old_max, i, 0)
        top = max(old, top)
        if top == 0:
            return False
        new_max[i] = top
        for j in range(n):
            work[base + j] = work[base + j] - top
        work[rows * n + i] = old - top
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _softmax_store(
    probs: np.ndarray, running_max: np.ndarray, running_sum: np.ndarray, corr: np.ndarray, work: np.ndarray,
    new_max: np.ndarray, sums: np.ndarray,
) -> None:
    rows, n = probs.shape
    for i in range(rows):
        sums[i] = get(running_sum, i, 0) * work[rows * n + i] + (np.float32(0) + pairwise(work, i * n, n))
    for i in range(rows):  # stored in `online_softmax`'s order
        put(running_sum, i, 0, sums[i])
    for i in range(rows):
        put(running_max, i, 0, new_max[i])
    for i in range(rows):
        put(corr, i, 0, work[rows * n + i])
    for i in range(rows):
        for j in range(n):
            put(probs, i, j, work[i * n + j])


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16) if a.dtype == BF16 else a


def as_2d(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """`a` broadcast to `shape` and viewed as (rows, last axis), or None (not as a view)."""
    try:
        full = a if a.shape == shape else np.broadcast_to(a, shape)
        rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
        flat = np.reshape(full, (rows, shape[-1] if shape else 1), copy=False)
    except ValueError:
        return None
    return _bits(flat)


def distinct(a: np.ndarray) -> bool:
    """True when every element of the view has bytes of its own."""
    dims = sorted((abs(stride), size) for size, stride in zip(a.shape, a.strides) if size != 1)
    extent = a.itemsize
    for stride, size in dims:
        if stride < extent:
            return False
        extent = stride * size
    return True


def same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two views read the same elements in the same order."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
    )


def separate(outputs: list[np.ndarray], inputs: list[np.ndarray]) -> bool:
    """Whether outputs written element by element leave the result as `npu_semantics`'s
    (which reads every input first, then stores the outputs in order): each output has
    distinct elements and is disjoint from every other operand or the same view of it."""
    if not all(distinct(o) for o in outputs):
        return False
    for k, o in enumerate(outputs):
        for other in (*outputs[k + 1:], *inputs):
            if np.may_share_memory(o, other) and not same_view(o, other):
                return False
    return True


def _kernel_dtypes(*arrays: np.ndarray | None) -> bool:
    return all(a is None or a.dtype in (F32, BF16) for a in arrays)


@dataclass(frozen=True)
class Fill:
    """`sem.fill`: the value rounded to `out`'s dtype once (by `sem.fill` itself), then copied."""

    out: np.ndarray
    value: np.ndarray

    def __call__(self) -> None:
        np.copyto(self.out, self.value)


@dataclass(frozen=True)
class Binary:
    """`sem.binary` (add, mul, div) in one kernel."""

    kind: int
    out: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    fallback: Step

    def __call__(self) -> None:
        if not _binary(self.kind, self.out, self.lhs, self.rhs):
            self.fallback()


@dataclass(frozen=True)
class SiluMul:
    """`sem.act_mul` with `silu`: `exp(-gate)` by numpy on a contiguous work array."""

    out: np.ndarray
    gate: np.ndarray
    up: np.ndarray
    work: np.ndarray
    fallback: Step

    def __call__(self) -> None:
        if not _negated(self.gate, self.up, self.work):
            self.fallback()
            return
        np.exp(self.work, out=self.work)
        _silu_mul(self.out, self.gate, self.up, self.work)


@dataclass(frozen=True)
class SiluMulProducts:
    """`SiluMul` whose gate and up are tiles of matmul products `[n, m, numel]`, read as
    their commits would store them (rounded to the dtypes of `gate_like`, `up_like`)."""

    out: np.ndarray
    products: np.ndarray
    gate: int
    up: int
    gate_like: np.ndarray
    up_like: np.ndarray
    work: np.ndarray
    fallback: Step

    def __call__(self) -> None:
        if not _negated_products(self.products, self.gate, self.up, self.gate_like, self.up_like, self.work):
            self.fallback()
            return
        np.exp(self.work, out=self.work)
        _silu_mul_products(self.out, self.products, self.gate, self.up, self.gate_like, self.up_like, self.work)


@dataclass(frozen=True)
class RmsNorm:
    """`sem.rms_norm` in one kernel (`squares`: one row's fp32 work array)."""

    out: np.ndarray
    x: np.ndarray
    weight: np.ndarray
    squares: np.ndarray
    eps: np.float32
    fallback: Step

    def __call__(self) -> None:
        if not _rms_norm(self.out, self.x, self.weight, self.squares, self.eps):
            self.fallback()


@dataclass(frozen=True)
class AddRmsNorm:
    """`sem.add_rms_norm` in one kernel."""

    total: np.ndarray
    out: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    weight: np.ndarray
    squares: np.ndarray
    eps: np.float32
    fallback: Step

    def __call__(self) -> None:
        if not _add_rms_norm(self.total, self.out, self.lhs, self.rhs, self.weight, self.squares, self.eps):
            self.fallback()


ROPE_SPECS: list[kernels.RopeSpec] = []
"""The specs of the plans' rope steps, by index (a cheap key: a spec hashes all its fields)."""


def rope_key(spec: kernels.RopeSpec) -> int:
    if spec not in ROPE_SPECS:
        ROPE_SPECS.append(spec)
    return ROPE_SPECS.index(spec)


@lru_cache(maxsize=256)
def rope_tables(spec_key: int, dtype: str, positions: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The `cos`, `sin` `[tokens, rotary_dim]` that `kernels.rope` multiplies by (interleaved:
    each pair's entry repeated) for spec `ROPE_SPECS[spec_key]`, computed by the same calls,
    read-only: the rope steps of a decode step share one position."""
    spec = ROPE_SPECS[spec_key]
    cos, sin = spec.cos_sin(np.frombuffer(positions, dtype))
    if spec.interleaved:
        half = spec.rotary_dim // 2
        cos, sin = np.repeat(cos[:, :half], 2, axis=-1), np.repeat(sin[:, :half], 2, axis=-1)
    cos, sin = np.ascontiguousarray(cos, np.float32), np.ascontiguousarray(sin, np.float32)
    cos.setflags(write=False)
    sin.setflags(write=False)
    return cos, sin


@dataclass(frozen=True)
class Rope:
    """`sem.rope` without an `ext_factors` table: the cos/sin tables of the positions
    looked up (`rope_tables`), the rotation in one kernel."""

    out: np.ndarray
    x: np.ndarray
    positions: np.ndarray
    heads: int
    spec: kernels.RopeSpec
    work: np.ndarray
    fallback: Step
    key: int = 0
    """`rope_key(spec)`."""
    dtype: str = ""
    """The positions' dtype."""

    def __call__(self) -> None:
        cos, sin = rope_tables(self.key, self.dtype, self.positions.tobytes())
        if not _rope(self.out, self.x, cos, sin, self.heads, self.spec.head_dim, self.spec.interleaved, self.work):
            self.fallback()


@dataclass(frozen=True)
class OnlineSoftmax:
    """`sem.online_softmax`: one kernel to the exponents, one `np.exp` over all of them
    (the rows' and the corrections'), one kernel for the sums and the stores."""

    probs: np.ndarray
    running_max: np.ndarray
    running_sum: np.ndarray
    corr: np.ndarray
    scores: np.ndarray
    work: np.ndarray
    new_max: np.ndarray
    sums: np.ndarray
    fallback: Step
    mask: np.ndarray | None = None
    """The fp32 `scores += mask` before, done here (`masked`)."""

    def __call__(self) -> None:
        mask = self.scores if self.mask is None else self.mask
        if not _softmax_shift(self.scores, mask, self.mask is not None, self.running_max, self.work, self.new_max):
            self.fallback()
            return
        np.exp(self.work, out=self.work)
        _softmax_store(self.probs, self.running_max, self.running_sum, self.corr, self.work, self.new_max, self.sums)


@dataclass(frozen=True)
class Both:
    """Two steps, one after the other."""

    first: Step
    second: Step

    def __call__(self) -> None:
        self.first()
        self.second()


def fuse_steps(steps: list[Step]) -> list[Step]:
    """`scores += mask` in place (fp32) right before the online softmax that reads those
    scores and stores its probabilities over them: the add's stores are overwritten unread,
    so the softmax adds the mask as it reads (`OnlineSoftmax.mask`)."""
    fused: list[Step] = []
    for step in steps:
        last = fused[-1] if fused else None
        if (
            isinstance(step, OnlineSoftmax) and step.mask is None and isinstance(last, Binary) and last.kind == ADD
            and last.out.dtype == F32 and same_view(last.out, last.lhs) and same_view(last.out, step.scores)
            and same_view(step.probs, step.scores)
        ):
            fused[-1] = dataclasses.replace(step, mask=last.rhs, fallback=Both(last, step))
        else:
            fused.append(step)
    return fused


def _fill(v: Mapping[str, np.ndarray], value: float) -> Step:
    out = v["out"]
    constant = np.empty((), out.dtype)
    sem.fill(constant, value)
    return Fill(out, constant)


def _binary_step(v: Mapping[str, np.ndarray], kind: str, fallback: Step) -> Step | None:
    out, lhs, rhs = v["out"], v["lhs"], v["rhs"]
    if not _kernel_dtypes(out, lhs, rhs) or not separate([out], [lhs, rhs]):
        return None
    out2, lhs2, rhs2 = (as_2d(a, out.shape) for a in (out, lhs, rhs))
    if out2 is None or lhs2 is None or rhs2 is None:
        return None
    return Binary(BINARY[kind], out2, lhs2, rhs2, fallback)


def _act_mul(v: Mapping[str, np.ndarray], kind: str, fallback: Step, work: Work) -> Step | None:
    out, gate, up = v["out"], v["gate"], v["up"]
    if kind != kernels.Activation.SILU or not _kernel_dtypes(out, gate, up) or not separate([out], [gate, up]):
        return None
    out2, gate2, up2 = (as_2d(a, out.shape) for a in (out, gate, up))
    if out2 is None or gate2 is None or up2 is None or gate.shape != out.shape:
        return None
    return SiluMul(out2, gate2, up2, work("act_mul", out2.shape), fallback)


def _norm_views(out: np.ndarray, x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if out.shape != x.shape or not x.shape or x.shape[-1] == 0:
        return None
    try:
        if np.broadcast_shapes(x.shape, weight.shape) != x.shape:
            return None
    except ValueError:
        return None
    views = as_2d(out, x.shape), as_2d(x, x.shape), as_2d(weight, x.shape)
    if views[0] is None or views[1] is None or views[2] is None:
        return None
    return views[0], views[1], views[2]


def _rms_norm_step(v: Mapping[str, np.ndarray], eps: float, fallback: Step, work: Work) -> Step | None:
    out, x, weight = v["out"], v["input"], v["weight"]
    if not _kernel_dtypes(out, x, weight) or not separate([out], [x, weight]):
        return None
    views = _norm_views(out, x, weight)
    if views is None:
        return None
    return RmsNorm(*views, work("squares", (x.shape[-1],)), np.float32(eps), fallback)


def _add_rms_norm_step(v: Mapping[str, np.ndarray], eps: float, fallback: Step, work: Work) -> Step | None:
    total, out, lhs, rhs, weight = v["sum"], v["out"], v["lhs"], v["rhs"], v["weight"]
    if not _kernel_dtypes(total, out, lhs, rhs, weight) or not separate([total, out], [lhs, rhs, weight]):
        return None
    if lhs.shape != total.shape or rhs.shape != total.shape:
        return None
    views = _norm_views(out, total, weight)
    sides = as_2d(lhs, total.shape), as_2d(rhs, total.shape)
    if views is None or sides[0] is None or sides[1] is None:
        return None
    out2, total2, weight2 = views
    return AddRmsNorm(total2, out2, sides[0], sides[1], weight2, work("squares", (total.shape[-1],)), np.float32(eps), fallback)


def _rope_step(v: Mapping[str, np.ndarray], heads: int, spec: kernels.RopeSpec, fallback: Step, work: Work) -> Step | None:
    out, x, positions = v["out"], v["input"], v["positions"]
    if v.get("ext_factors") is not None or not _kernel_dtypes(out, x) or not separate([out], [x, positions]):
        return None
    if x.ndim != 2 or out.shape != x.shape or positions.size != x.shape[0] or positions.dtype.kind not in "iu":
        return None
    if x.shape[1] != heads * spec.head_dim or not 0 < spec.rotary_dim <= spec.head_dim or spec.rotary_dim % 2:
        return None
    return Rope(
        _bits(out), _bits(x), positions, heads, spec, work("rope", (spec.head_dim,)), fallback, rope_key(spec), positions.dtype.str
    )


def _softmax_step(v: Mapping[str, np.ndarray], fallback: Step, work: Work) -> Step | None:
    probs, running_max, running_sum, corr, scores = v["probs"], v["max"], v["sum"], v["corr"], v["scores"]
    operands = (probs, running_max, running_sum, corr, scores)
    if not _kernel_dtypes(*operands) or not separate([running_sum, running_max, corr, probs], [scores]):
        return None
    shape = scores.shape
    if not shape or shape[-1] == 0 or probs.shape != shape:
        return None
    column = (*shape[:-1], 1)
    if any(a.shape != column for a in (running_max, running_sum, corr)):
        return None
    views = [as_2d(a, a.shape) for a in operands]
    probs2, max2, sum2, corr2, scores2 = views
    if probs2 is None or max2 is None or sum2 is None or corr2 is None or scores2 is None:
        return None
    rows, n = scores2.shape
    return OnlineSoftmax(
        probs2, max2, sum2, corr2, scores2, work("softmax", (rows * n + rows,)), work("softmax max", (rows,)),
        work("softmax sum", (rows,)), fallback,
    )


def products_step(
    mnemonic: str, values: Mapping[str, object], out: np.ndarray, products: np.ndarray,
    inputs: Mapping[str, tuple[int, np.dtype]], fallback: Step, work: Work,
) -> Step | None:
    """An elementwise op over n tiles of m matmul products (`products [n, m, numel]`, fp32),
    input `name` being `products[:, j]` stored as `dtype` (`inputs[name] = (j, dtype)`), its
    output `out [n, numel]`: `act_mul` (silu) reads the products without staging them; None
    for the others (`fallback`: the op over the staged products)."""
    if mnemonic != "act_mul" or str(values["kind"]) != kernels.Activation.SILU or set(inputs) != {"gate", "up"}:
        return None
    (gate, gate_dtype), (up, up_dtype) = inputs["gate"], inputs["up"]
    if not _kernel_dtypes(out) or not {gate_dtype, up_dtype} <= {F32, BF16} or products.dtype != F32 or products.ndim != 3:
        return None
    if not products.flags.c_contiguous or out.shape != (products.shape[0], products.shape[2]) or not distinct(out):
        return None
    if np.may_share_memory(out, products):
        return None
    likes = [np.zeros(0, np.uint16 if dtype == BF16 else np.float32) for dtype in (gate_dtype, up_dtype)]
    return SiluMulProducts(_bits(out), products, gate, up, likes[0], likes[1], work("act_mul", out.shape), fallback)


def vector_step(
    mnemonic: str, v: Mapping[str, np.ndarray], values: Mapping[str, object], fallback: Step, work: Work
) -> Step | None:
    """The specialised step of a vector instruction over its views `v` with immediates
    `values` and work arrays from `work`, or None where `fallback` (its `npu_semantics`
    call) stays."""
    if mnemonic == "fill":
        return _fill(v, float(values["value"]))  # type: ignore[arg-type]  # an immediate
    if mnemonic in BINARY:
        return _binary_step(v, mnemonic, fallback)
    if mnemonic == "act_mul":
        return _act_mul(v, str(values["kind"]), fallback, work)
    if mnemonic == "rms_norm":
        return _rms_norm_step(v, float(values["eps"]), fallback, work)  # type: ignore[arg-type]  # an immediate
    if mnemonic == "add_rms_norm":
        return _add_rms_norm_step(v, float(values["eps"]), fallback, work)  # type: ignore[arg-type]  # an immediate
    if mnemonic == "rope":
        spec = kernels.RopeSpec.from_values(values)
        return _rope_step(v, int(values["num_heads"]), spec, fallback, work)  # type: ignore[call-overload]  # an immediate
    if mnemonic == "online_softmax":
        return _softmax_step(v, fallback, work)
    return None
