"""Weight tiles dequantized into a reused fp32 buffer, bit-identical to
`npu_semantics.dequantize_tile`.

The simulator keeps weights as the parameter blob stores them and dequantizes a tile each
time a matmul reads it. Every element is `(code - zero) * scale` in fp32, one rounding per
operation as in `axc.quantization.dequantize`, so any order of evaluation gives the same
bits; the s8/s4 loops are compiled with numba (no fast-math, so no contraction).
`TileGemv` multiplies one row by an s8 tile without the fp32 tile (see its docstring).

```python
tile = TileDequantizer.of(codes, "s8", scales, None, group=0)   # None: not handled here
tile(buffer)                        # buffer[...] = dequantize_tile(codes, "s8", scales, None, 0)
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from axc.sim.blas import NBMAX, ROW_BLOCK, SGEMV, dot4_s8, fetch_add, gemv_rows, prefetch

NO_ZEROS = np.zeros((0, 0), np.float32)
BLOCK_BYTES = 32 << 10
"""fp32 bytes of a `TileGemv` row block: what the L1 data cache holds beside the codes."""
MIN_COLS = 16
"""OpenBLAS's AVX-512 sgemv_t has kernels of their own for dot products of 8 or fewer
elements that take the outputs 16 at a time: shorter rows keep the whole-tile product."""


@numba.njit(cache=True, nogil=True, inline="always")
def _rows_s8(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray, group: int, start: int, stop: int, out: np.ndarray) -> None:
    """Rows `[start, stop)` of the tile into `out[0 : stop - start]`; `zeros` of no rows:
    symmetric (`code - 0.0` is `code`, so the subtraction goes)."""
    cols = codes.shape[1]
    groups = scales.shape[1]
    for r in range(start, stop):
        for g in range(groups):
            first = g * group
            end = cols if g == groups - 1 else min(first + group, cols)
            s = scales[r, g]
            src = codes[r, first:end]
            dst = out[r - start, first:end]
            if zeros.shape[0] == 0:
                for c in range(end - first):  # slices, so the loop vectorizes
                    dst[c] = np.float32(src[c]) * s
            else:
                z = zeros[r, g]
                for c in range(end - first):
                    dst[c] = (np.float32(src[c]) - z) * s


@numba.njit(cache=True, nogil=True)
def _dequant_s8(codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray, group: int, out: np.ndarray) -> None:
    _rows_s8(codes, scales, zeros, group, 0, codes.shape[0], out)


@numba.njit(cache=True, nogil=True)
def _gemv_s8(
    gemv: int, codes: np.ndarray, scales: np.ndarray, zeros: np.ndarray, group: int, x: np.ndarray, y: np.ndarray, block: np.ndarray
) -> None:
    """`y = dequantized tile @ x`, `block` rows at a time dequantized into `block` (small
    enough to stay in the L1 cache) and multiplied there: the bits of the whole product."""
    rows = codes.shape[0]
    step = block.shape[0]
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        _rows_s8(codes, scales, zeros, group, start, stop, block)
        gemv_rows(gemv, block[: stop - start], x, y[start:stop])


@numba.njit(cache=True, nogil=True)
def _dot_s8(
    gemv: int, codes: np.ndarray, scales: np.ndarray, group: int, x: np.ndarray, y: np.ndarray, block: np.ndarray
) -> bool:
    """`_gemv_s8` of a symmetric tile with one scale per row and rows of a multiple of 16
    elements, four rows at a time in registers (`dot4_s8`: sgemv_t's own order, its row
    chunks of `NBMAX` added to a zeroed `y` as sgemv_t adds them); the last `rows % 4`
    rows, which sgemv_t takes through other kernels, by `_gemv_s8`. False (and `y`
    unfinished) when an output is NaN: which NaN payload an addition keeps may differ."""
    rows, cols = codes.shape
    base, stride, xs = codes.ctypes.data, codes.strides[0], x.ctypes.data
    whole = rows - rows % 4
    for r in range(0, whole, 4):
        for line in range(base + (r + 4) * stride, base + min(rows, r + 8) * stride, 64):  # the next four rows: DRAM's latency hidden
            prefetch(line)  # type: ignore[call-arg]  # numba supplies the typing context
        t0 = t1 = t2 = t3 = np.float32(0.0)
        for start in range(0, cols, NBMAX):
            d0, d1, d2, d3 = dot4_s8(  # type: ignore[call-arg, var-annotated]  # numba supplies the typing context and the types
                base + r * stride + start, stride, scales[r, 0], scales[r + 1, 0], scales[r + 2, 0], scales[r + 3, 0],
                xs + 4 * start, min(cols, start + NBMAX) - start,
            )
            t0, t1, t2, t3 = t0 + d0, t1 + d1, t2 + d2, t3 + d3
        if np.isnan(t0) or np.isnan(t1) or np.isnan(t2) or np.isnan(t3):
            return False
        y[r], y[r + 1], y[r + 2], y[r + 3] = t0, t1, t2, t3
    if whole < rows:
        _gemv_s8(gemv, codes[whole:], scales[whole:], NO_ZEROS, group, x, y[whole:], block)
    return True


@numba.njit(cache=True, nogil=True)
def _dot_s8_units(
    table: np.ndarray, units: np.ndarray, scales: np.ndarray, x: np.ndarray, y: np.ndarray, flags: np.ndarray, lo: int, hi: int
) -> None:
    """`_dot_s8`'s four-row products `units[lo:hi]` (tile, first row) of the tiles of
    `table` (per tile: codes address, row stride, columns, and its offsets in `scales`,
    `x` and `y`), into `y`; a tile with a NaN output gets `flags[tile] = 1`."""
    xs = x.ctypes.data
    for u in range(lo, hi):
        k, r = units[u, 0], units[u, 1]
        base, stride, cols, scale, row, out = table[k, 0], table[k, 1], table[k, 2], table[k, 3] + r, table[k, 4], table[k, 5] + r
        if u + 1 < hi:  # the next four rows: DRAM's latency hidden
            following = table[units[u + 1, 0], 0] + units[u + 1, 1] * table[units[u + 1, 0], 1]
            for line in range(following, following + 4 * table[units[u + 1, 0], 1], 64):
                prefetch(line)  # type: ignore[call-arg]  # numba supplies the typing context
        t0 = t1 = t2 = t3 = np.float32(0.0)
        for start in range(0, cols, NBMAX):
            d0, d1, d2, d3 = dot4_s8(  # type: ignore[call-arg, var-annotated]  # numba supplies the typing context and the types
                base + r * stride + start, stride, scales[scale], scales[scale + 1], scales[scale + 2], scales[scale + 3],
                xs + 4 * (row + start), min(cols, start + NBMAX) - start,
            )
            t0, t1, t2, t3 = t0 + d0, t1 + d1, t2 + d2, t3 + d3
        if np.isnan(t0) or np.isnan(t1) or np.isnan(t2) or np.isnan(t3):
            flags[k] = 1
        y[out], y[out + 1], y[out + 2], y[out + 3] = t0, t1, t2, t3


@numba.njit(cache=True, nogil=True)
def _dot_s8_claimed(
    table: np.ndarray, units: np.ndarray, scales: np.ndarray, x: np.ndarray, y: np.ndarray, flags: np.ndarray,
    counter: np.ndarray, chunk: int,
) -> None:
    """`_dot_s8_units` over chunks of `chunk` products claimed from `counter[0]` until
    none are left: threads that run this at once share the products as fast as each goes."""
    count = units.shape[0]
    while True:
        lo = fetch_add(counter.ctypes.data, chunk)  # type: ignore[call-arg, var-annotated]  # numba supplies the typing context and the type
        if lo >= count:
            return
        _dot_s8_units(table, units, scales, x, y, flags, lo, min(count, lo + chunk))


@numba.njit(cache=True, nogil=True)
def _dequant_s4(packed: np.ndarray, signed: bool, scales: np.ndarray, zeros: np.ndarray, group_of: np.ndarray, out: np.ndarray) -> None:
    rows, width = packed.shape
    for r in range(rows):
        for j in range(width):
            byte = np.int32(packed[r, j])
            low, high = byte & 15, byte >> 4
            if signed:
                low = low - 16 if low >= 8 else low
                high = high - 16 if high >= 8 else high
            g0, g1 = group_of[2 * j], group_of[2 * j + 1]
            out[r, 2 * j] = (np.float32(low) - zeros[r, g0]) * scales[r, g0]
            out[r, 2 * j + 1] = (np.float32(high) - zeros[r, g1]) * scales[r, g1]


@dataclass(frozen=True)
class TileDequantizer:
    """Fills an fp32 buffer with one weight tile (`codes` are read at call time)."""

    codes: np.ndarray
    fmt: str
    scales: np.ndarray | None
    """fp32 `[rows, groups]` (converted once: exact)."""
    zeros: np.ndarray | None
    """fp32 `[rows, groups]`; None for symmetric s8 tiles, all zero for symmetric s4 ones
    (`code - 0.0` is `code`)."""
    group: int
    """Columns per scale."""
    signed: bool
    group_of: np.ndarray | None
    """The scale column of every weight column (s4)."""

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.codes.shape
        return rows, cols * (2 if self.fmt == "s4" else 1)

    @staticmethod
    def supports(fmt: str, group: int, codes: np.dtype, shape: tuple[int, ...], scales: np.dtype | None, scale_count: int, zero_count: int | None) -> bool:
        """Whether a tile of this format and these operand types and sizes is handled here
        (else the caller keeps `dequantize_tile`, which also reports what is wrong)."""
        if len(shape) != 2 or 0 in shape:
            return False
        if fmt == "float":
            return codes.kind in "fV"
        if scales is None or group < 0 or scales.name not in ("float16", "bfloat16", "float32"):
            return False
        rows, cols = shape[0], shape[1] * (2 if fmt == "s4" else 1)
        if scale_count != rows * math.ceil(cols / (group or cols)) or (zero_count is not None and zero_count != scale_count):
            return False
        if fmt in ("s8", "s4"):
            return codes == (np.int8 if fmt == "s8" else np.uint8)
        return fmt in ("fp8_e4m3", "fp8_e5m2") and codes.kind == "V" and not group and zero_count is None

    @staticmethod
    def of(codes: np.ndarray, fmt: str, scales: np.ndarray | None, zeros: np.ndarray | None, group: int) -> TileDequantizer | None:
        """The dequantizer of a tile whose scales and zeros are constant, or None (see `supports`)."""
        supported = TileDequantizer.supports(
            fmt, group, codes.dtype, codes.shape, None if scales is None else scales.dtype,
            0 if scales is None else scales.size, None if zeros is None else zeros.size,
        )
        return TileDequantizer.checked(codes, fmt, scales, zeros, group) if supported else None

    @staticmethod
    def checked(codes: np.ndarray, fmt: str, scales: np.ndarray | None, zeros: np.ndarray | None, group: int) -> TileDequantizer:
        """`of` for a tile `supports` has accepted already."""
        rows = codes.shape[0]
        if fmt == "float":
            return TileDequantizer(codes, fmt, None, None, codes.shape[1], False, None)
        assert scales is not None
        cols = codes.shape[1] * (2 if fmt == "s4" else 1)
        size = group or cols
        groups = math.ceil(cols / size)
        scales32 = np.ascontiguousarray(scales, np.float32).reshape(rows, groups)
        zeros32 = None if zeros is None else np.asarray(zeros).reshape(rows, groups).astype(np.float32)
        if fmt != "s4":
            return TileDequantizer(codes, fmt, scales32, zeros32, size, zeros is None, None)
        if zeros32 is None:
            zeros32 = np.zeros((rows, groups), np.float32)
        group_of = np.minimum(np.arange(cols) // size, groups - 1)
        return TileDequantizer(codes, fmt, scales32, zeros32, size, zeros is None, group_of)

    def __call__(self, out: np.ndarray) -> np.ndarray:
        scales = self.scales  # `of` sets them for every integer format
        if self.fmt == "s8" and scales is not None:
            _dequant_s8(self.codes, scales, NO_ZEROS if self.zeros is None else self.zeros, self.group, out)
        elif self.fmt == "s4" and scales is not None:
            assert self.zeros is not None and self.group_of is not None
            _dequant_s4(self.codes, self.signed, scales, self.zeros, self.group_of, out)
        else:
            np.copyto(out, self.codes, casting="unsafe")  # exact: every float storage type fits fp32
            if self.scales is not None:
                np.multiply(out, self.scales, out=out)
        return out


@dataclass(frozen=True)
class TileGemv:
    """`x @ dequantize_tile(...).T` for one fp32 row `x`, without the fp32 tile: a few rows
    at a time are dequantized into `block` and multiplied by numpy's `cblas_sgemv` right
    away (`axc.sim.blas`), the call `np.matmul` makes for the whole tile, so the same bits.
    Symmetric tiles with a scale per row (and rows of 16k elements) go faster: four rows
    at a time dequantized in registers and summed in sgemv_t's own order (`_dot_s8`,
    used where a probe at import finds this machine's sgemv_t giving the same bits).

    ```python
    gemv = TileGemv.of(TileDequantizer.of(codes, "s8", scales, None, 0), block)  # None: not handled
    gemv(x, out)        # out[0] = (x @ dequantize_tile(codes, "s8", scales, None, 0).T)[0]
    ```
    """

    tile: TileDequantizer
    block: np.ndarray
    """fp32 `[block_rows(cols), cols]` work array."""

    @staticmethod
    def block_rows(cols: int) -> int:
        """Rows per block: a multiple of `ROW_BLOCK` (the BLAS kernel's grouping of outputs),
        at least two of them (long rows: fewer calls beat an L1-sized block)."""
        return ROW_BLOCK * max(2, BLOCK_BYTES // (4 * cols * ROW_BLOCK))

    @staticmethod
    def supports(tile: TileDequantizer) -> bool:
        """s8 tiles of at least two rows (`np.matmul` makes one row a dot product) and
        `MIN_COLS` columns, their codes' rows contiguous."""
        rows, cols = tile.codes.shape
        return SGEMV is not None and tile.fmt == "s8" and rows >= 2 and cols >= MIN_COLS and tile.codes.strides[1] == 1

    in_registers: bool = field(init=False)
    """Whether `_dot_s8` takes the tile (symmetric, one scale per row, rows of 16k)."""

    def __post_init__(self) -> None:
        tile = self.tile
        assert tile.scales is not None  # `supports`
        registers = DOT_S8 and tile.zeros is None and tile.scales.shape[1] == 1 and tile.codes.shape[1] % 16 == 0
        object.__setattr__(self, "in_registers", registers)

    def __call__(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """`out` `[1, rows]` = `x` `[1, cols]` @ the dequantized tile, transposed."""
        tile = self.tile
        assert SGEMV is not None and tile.scales is not None  # `supports`
        if self.in_registers and _dot_s8(SGEMV, tile.codes, tile.scales, tile.group, x[0], out[0], self.block):
            return out
        _gemv_s8(SGEMV, tile.codes, tile.scales, NO_ZEROS if tile.zeros is None else tile.zeros, tile.group, x[0], out[0], self.block)
        return out


def _probe_dot() -> bool:
    """Whether `_dot_s8` gives `_gemv_s8`'s bits here (the BLAS numpy loaded may use other
    kernels): tiles with a row remainder, one- and two-chunk rows, sums that cancel."""
    if SGEMV is None:
        return False
    rng = np.random.default_rng(1)
    for rows, cols in ((7, 48), (6, NBMAX + 32)):
        codes = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
        scales = (rng.random((rows, 1)) * 0.05).astype(np.float32)
        x = rng.standard_normal(cols).astype(np.float32)
        x[::5] *= 1e4
        expected, got = np.zeros(rows, np.float32), np.zeros(rows, np.float32)
        block = np.zeros((TileGemv.block_rows(cols), cols), np.float32)
        _gemv_s8(SGEMV, codes, scales, NO_ZEROS, cols, x, expected, block)
        if not _dot_s8(SGEMV, codes, scales, cols, x, got, block) or got.tobytes() != expected.tobytes():
            return False
    return True


DOT_S8 = _probe_dot()
"""`_dot_s8` is used (it reproduces this machine's sgemv_t)."""


@dataclass(frozen=True)
class GemvBatch:
    """The products of a run of `TileGemv`s that `_dot_s8` takes whole (symmetric, a scale
    per row, rows a multiple of four), computed in one compiled call per thread: each
    four-row product is `_dot_s8`'s, so the bits of every tile's own product. `cast`
    copies each input row into `x` (one row: the run's products share it), `compute(lo,
    hi)` the products `[lo, hi)` of `count`; threads that `share` at once (after `claim`
    resets the counter) take chunks of them as they go; then `results[k]`
    holds tile `k`'s product unless `flags[k]` (a NaN: `repair` has `TileGemv` compute
    those).

    ```python
    batch = GemvBatch.of([gemv_q, gemv_k, gemv_v], shared=True)   # None: not all taken whole
    batch.cast([lhs]); batch.compute(0, batch.count); batch.results[1]   # = gemv_k(x, out)
    ```
    """

    table: np.ndarray
    units: np.ndarray
    scales: np.ndarray
    x: np.ndarray
    y: np.ndarray
    flags: np.ndarray
    inputs: tuple[np.ndarray, ...]
    """Views of `x`: the fp32 input row of each tile (one for all when shared)."""
    results: tuple[np.ndarray, ...]
    """Views of `y`: `[1, rows]` per tile."""
    elements: int
    """Weight elements of all the tiles."""
    gemvs: tuple[TileGemv, ...]
    counter: np.ndarray
    """[0]: the next product a `share` claims."""
    chunk: int
    """Products per claim: about 1/128 of the run, at least 4."""

    @property
    def count(self) -> int:
        return len(self.units)

    @staticmethod
    def of(gemvs: Sequence[TileGemv], shared: bool) -> GemvBatch | None:
        if not gemvs or not all(g.in_registers and g.tile.codes.shape[0] % 4 == 0 for g in gemvs):
            return None
        rows = [g.tile.codes.shape[0] for g in gemvs]
        cols = [g.tile.codes.shape[1] for g in gemvs]
        if shared and len(set(cols)) != 1:
            return None
        row_at = np.cumsum([0, *rows]).tolist()
        x_at = [0] * len(gemvs) if shared else np.cumsum([0, *cols]).tolist()[:-1]
        x = np.zeros(cols[0] if shared else sum(cols), np.float32)
        table = np.array(
            [(g.tile.codes.ctypes.data, g.tile.codes.strides[0], c, row_at[k], x_at[k], row_at[k])
             for k, (g, c) in enumerate(zip(gemvs, cols))], np.uint64,
        )
        quads = np.array(rows) // 4
        tiles = np.repeat(np.arange(len(rows)), quads)
        units = np.stack([tiles, 4 * (np.arange(len(tiles)) - np.repeat(np.cumsum(quads) - quads, quads))], axis=1).astype(np.uint64)
        scales = np.concatenate([g.tile.scales.reshape(-1) for g in gemvs if g.tile.scales is not None])
        y = np.zeros(row_at[-1], np.float32)
        work = int(np.array(cols, np.int64)[units[:, 0].astype(np.int64)].sum())
        return GemvBatch(
            table, units, scales, x, y, np.zeros(len(gemvs), np.uint8),
            (x,) if shared else tuple(x[x_at[k]: x_at[k] + c] for k, c in enumerate(cols)),
            tuple(y[row_at[k]: row_at[k + 1]].reshape(1, -1) for k in range(len(gemvs))),
            4 * work, tuple(gemvs), np.zeros(16, np.int64), max(4, len(units) // 128),
        )

    def cast(self, rows: Sequence[np.ndarray]) -> None:
        """Each tile's input row (one when shared) into `x`, as fp32."""
        for into, row in zip(self.inputs, rows, strict=True):
            np.copyto(into, row.reshape(into.shape), casting="unsafe")
        self.flags[:] = 0

    def compute(self, lo: int, hi: int) -> None:
        _dot_s8_units(self.table, self.units, self.scales, self.x, self.y, self.flags, lo, hi)

    def claim(self) -> None:
        """Every product unclaimed again (before the threads `share` them)."""
        self.counter[0] = 0

    def share(self) -> None:
        _dot_s8_claimed(self.table, self.units, self.scales, self.x, self.y, self.flags, self.counter, self.chunk)

    def repair(self) -> None:
        """The products of the flagged tiles by their `TileGemv` (which leaves NaN outputs to BLAS)."""
        for k in np.flatnonzero(self.flags):
            self.gemvs[k](self.inputs[0 if len(self.inputs) == 1 else k].reshape(1, -1), self.results[k])
