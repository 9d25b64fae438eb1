"""numpy's own `cblas_sgemv`, callable from numba kernels (`axc.sim.dequant`).

`np.matmul` of one fp32 row by the transpose of a C-ordered tile of two or more rows is one
`cblas_sgemv` call of the BLAS numpy links (column-major, transposed, alpha 1, beta 0). A
numba kernel that makes the same call on row blocks of the tile gets the bits of the whole
product (each output is the dot product of its own row, and blocks of a multiple of
`ROW_BLOCK` rows keep the kernel's grouping of outputs), without a round trip through
Python per block. `SGEMV` is the function's address, or None when numpy's BLAS is not
found or does not give `np.matmul`'s bits on a probe; callers then keep `np.matmul`.

```python
gemv_rows(SGEMV, tile, x, y)   # y[:] = (x[None] @ tile.T)[0], inside or outside numba
```
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from threadpoolctl import threadpool_info

COL_MAJOR, NO_TRANS, TRANS = 102, 111, 112
"""CBLAS enum values."""
ROW_BLOCK = 4
"""OpenBLAS's sgemv_t takes the outputs four at a time (then two, then one): blocks of a
multiple of four rows give every output the kernel path it has in the whole product."""
NBMAX = 4096
"""sgemv_t's row chunk: longer dot products are summed per chunk, then added to `y`."""


def _sgemv_of(trans: int) -> Callable[..., None]:
    """The `cblas_sgemv` intrinsic with `trans` fixed."""
    @intrinsic
    def sgemv(typingctx, address, m, n, a, lda, x, y):
        """`cblas_sgemv(COL_MAJOR, trans, m, n, 1, a, lda, x, 1, 0, y, 1)` through `address`
        (64-bit BLAS integers; `a`, `x`, `y` as addresses)."""
        sig = types.void(types.intp, types.intp, types.intp, types.uintp, types.intp, types.uintp, types.uintp)

        def codegen(context, builder, signature, args):
            i32, i64, f32, ptr = ir.IntType(32), ir.IntType(64), ir.FloatType(), ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64])
            address_, m_, n_, a_, lda_, x_, y_ = args
            function = builder.inttoptr(address_, fnty.as_pointer())
            one, zero, unit = ir.Constant(f32, 1.0), ir.Constant(f32, 0.0), ir.Constant(i64, 1)
            builder.call(function, [
                ir.Constant(i32, COL_MAJOR), ir.Constant(i32, trans), m_, n_, one, builder.inttoptr(a_, ptr), lda_,
                builder.inttoptr(x_, ptr), unit, zero, builder.inttoptr(y_, ptr), unit,
            ])
            return context.get_dummy_value()

        return sig, codegen

    return sgemv


_sgemv = _sgemv_of(TRANS)
_sgemv_n = _sgemv_of(NO_TRANS)


@intrinsic
def dot4_s8(typingctx, codes, stride, s0, s1, s2, s3, x, n):
    """Four s8 rows (`codes` their first byte, `stride` bytes apart, scaled by `s0..s3`)
    dotted with `n` fp32 `x` (a multiple of 16): sgemv_t's `sgemv_kernel_4x4` for
    AVX2/AVX-512 cores, operation for operation. Each row has 8 lanes; lane `l` takes
    `fma(code * scale, x, lane)` over the elements `i % 8 == l` in order; then the high
    four lanes are added to the low four and the four sums are added pairwise
    (`(v0 + v1) + (v2 + v3)`). Returns the four sums. Two rows share a 16-lane vector
    (one AVX-512 register; two AVX2 ones elsewhere): each lane's operations are the same."""
    sig = types.UniTuple(types.float32, 4)(types.uintp, types.intp, types.float32, types.float32, types.float32, types.float32, types.uintp, types.intp)

    def codegen(context, builder, signature, args):
        codes_, stride_, *scales_, x_, n_ = args
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        v8f, v16f = ir.VectorType(f32, 8), ir.VectorType(f32, 16)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16f, [v16f, v16f, v16f]), "llvm.fma.v16f32")
        zero = ir.Constant(v16f, [0.0] * 16)

        def halves(low: ir.Value, high: ir.Value) -> ir.Value:
            """`low` in lanes 0-7, `high` in lanes 8-15."""
            vector = ir.Constant(v16f, ir.Undefined)
            for lane in range(16):
                vector = builder.insert_element(vector, low if lane < 8 else high, ir.Constant(i32, lane))
            return vector

        splats = [halves(scales_[0], scales_[1]), halves(scales_[2], scales_[3])]
        rows = [builder.add(codes_, builder.mul(stride_, ir.Constant(i64, k))) for k in range(4)]
        entry, loop, done = builder.basic_block, builder.append_basic_block("dot4.loop"), builder.append_basic_block("dot4.done")
        builder.cbranch(builder.icmp_signed(">", n_, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        i = builder.phi(i64)
        lanes = [builder.phi(v16f) for _ in range(2)]
        x8 = builder.load(builder.inttoptr(builder.add(x_, builder.mul(i, ir.Constant(i64, 4))), v8f.as_pointer()), align=4)
        xs = builder.shuffle_vector(x8, x8, ir.Constant(ir.VectorType(i32, 16), [*range(8), *range(8)]))
        codes8 = [
            builder.load(builder.inttoptr(builder.add(row, i), ir.VectorType(ir.IntType(8), 8).as_pointer()), align=1)
            for row in rows
        ]
        summed = []
        for pair, (splat, lane) in enumerate(zip(splats, lanes)):
            codes16 = builder.shuffle_vector(codes8[2 * pair], codes8[2 * pair + 1], ir.Constant(ir.VectorType(i32, 16), list(range(16))))
            summed.append(builder.call(fma, [builder.fmul(builder.sitofp(codes16, v16f), splat), xs, lane]))
        step = builder.add(i, ir.Constant(i64, 8))
        i.add_incoming(ir.Constant(i64, 0), entry)
        i.add_incoming(step, loop)
        for lane, value in zip(lanes, summed):
            lane.add_incoming(zero, entry)
            lane.add_incoming(value, loop)
        builder.cbranch(builder.icmp_signed("<", step, n_), loop, done)
        builder.position_at_end(done)
        finals = []
        for value in summed:
            final = builder.phi(v16f)
            final.add_incoming(zero, entry)
            final.add_incoming(value, loop)
            finals.append(final)
        sums = []
        for final in finals:
            for first in (0, 8):
                low = builder.shuffle_vector(final, final, ir.Constant(ir.VectorType(i32, 4), [first + k for k in range(4)]))
                high = builder.shuffle_vector(final, final, ir.Constant(ir.VectorType(i32, 4), [first + 4 + k for k in range(4)]))
                v = builder.fadd(high, low)
                e = [builder.extract_element(v, ir.Constant(i32, k)) for k in range(4)]
                sums.append(builder.fadd(builder.fadd(e[0], e[1]), builder.fadd(e[2], e[3])))
        return context.make_tuple(builder, signature.return_type, sums)

    return sig, codegen


@intrinsic
def fetch_add(typingctx, address, value):
    """Atomically add `value` to the int64 at `address`; the old value (relaxed order:
    only the counter itself is shared through it)."""
    sig = types.int64(types.uintp, types.int64)

    def codegen(context, builder, signature, args):
        pointer = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.atomic_rmw("add", pointer, args[1], "monotonic")

    return sig, codegen


@intrinsic
def prefetch(typingctx, address):
    """Hint the cache line at `address` into the caches (no fault, no effect on results)."""
    sig = types.void(types.uintp)

    def codegen(context, builder, signature, args):
        ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(function, [builder.inttoptr(args[0], ptr), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def gemv_cols(address: int, tile: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """`y[:cols] = x @ tile` for an fp32 tile with contiguous rows, as `np.matmul` computes
    one row times a matrix (`cblas_sgemv`, column major, not transposed)."""
    rows, cols = tile.shape
    _sgemv_n(address, cols, rows, tile.ctypes.data, tile.strides[0] // 4, x.ctypes.data, y.ctypes.data)


@numba.njit(cache=True, nogil=True)
def gemv_rows(address: int, tile: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """`y[:rows] = tile @ x` for an fp32 tile with contiguous rows, as `np.matmul` computes it."""
    rows, cols = tile.shape
    _sgemv(address, cols, rows, tile.ctypes.data, tile.strides[0] // 4, x.ctypes.data, y.ctypes.data)


def _numpy_blas() -> list[str]:
    """The OpenBLAS libraries inside numpy's package (numpy's own BLAS)."""
    root = Path(np.__file__).resolve().parent.parent
    return [
        info["filepath"] for info in threadpool_info()
        if info.get("internal_api") == "openblas" and root in Path(info.get("filepath", "")).parents
    ]


def _probe(address: int) -> bool:
    """Whether the call gives `np.matmul`'s bits on a tile with a row remainder."""
    rng = np.random.default_rng(0)
    tile = rng.standard_normal((13, 37)).astype(np.float32)
    x = rng.standard_normal((1, 37)).astype(np.float32)
    y = np.zeros((1, 13), np.float32)
    gemv_rows(address, tile, x[0], y[0])
    return y.tobytes() == np.matmul(x, tile.swapaxes(0, 1)).tobytes()


def _probe_cols(address: int) -> bool:
    """Whether `gemv_cols` gives `np.matmul`'s bits for a row times a matrix (a cache tile's shape)."""
    rng = np.random.default_rng(1)
    for rows, cols in ((255, 64), (37, 13)):
        tile = rng.standard_normal((rows, cols)).astype(np.float32)
        x = rng.standard_normal((1, rows)).astype(np.float32)
        y = np.zeros((1, cols), np.float32)
        gemv_cols(address, tile, x[0], y[0])
        if y.tobytes() != np.matmul(x, tile).tobytes():
            return False
    return True


def _find() -> int | None:
    for path in _numpy_blas():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_cblas_sgemv64_", "cblas_sgemv64_"):  # 64-bit integers, as `_sgemv` passes them
            function = getattr(library, name, None)
            if function is not None:
                address = ctypes.cast(function, ctypes.c_void_p).value
                return address if address and _probe(address) else None
    return None


SGEMV: int | None = _find()
SGEMV_COLS: int | None = SGEMV if SGEMV is not None and _probe_cols(SGEMV) else None
"""`SGEMV` where `gemv_cols` also gives `np.matmul`'s bits, else None."""
