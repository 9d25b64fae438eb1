"""Tile sizes and loop orders for `tile`, chosen by the time they take.

`tile` gives every op the OCM that the activations kept on chip around it leave free (its
`space`); the functions here list the schedules whose buffers fit that space and pick the
fastest: DMA and the matrix engine overlap, so a linear's schedule takes the longer of its
DDR bytes at the descriptor's peak DDR rate and its MACs, padded to the matrix tile, at the
engine's 16-bit rate (`Budget.seconds`; hardware figures only, no fitted parameter, so a
calibration never changes a schedule). A decode step (one row) is bound by its bytes, so
there the fewest DDR bytes win; a prefill chunk is bound by its MACs, and there a tile the
matrix engine must pad loses to one that moves a few more bytes under the MACs. Ties go to
fewer DDR bytes, then tiles the matrix engine need not pad (N and split K tiles multiples
of its granularity), then no K split, then tiles that divide the dimension (no ragged
last tile, so less code), then fewer DMAs. Attention's tiles are chosen by DDR bytes.

A linear `y[M, N] = x[M, K] @ W[N, K]^T` (one weight, or the gate and up weights of a
gated MLP, which share `x` and their tiles) has two loop orders:

- N outer, weight-stationary: each `[nt, kt]` weight tile is loaded once; `x` is read from
  OCM, or from DDR in `[mt, kt]` tiles once per N tile. DDR bytes: `W + X·⌈N/nt⌉ + Y`.
- M outer, activation-stationary (only when `x` lives in DDR): an `[mt, K]` block of `x` is
  loaded once and stays while every weight tile streams past it. DDR bytes:
  `W·⌈M/mt⌉ + X + Y`; with `mt = M` that is every byte once.

K is split (products accumulate in fp32 `[rows, nt]` tiles, rows = M for N outer, mt for M
outer) when a narrower weight tile or a wider N tile pays: a wide N tile is what makes
`X·⌈N/nt⌉` small when `x` cannot stay. Streamed tiles count twice (`double-buffer` gives
them a twin) unless only single copies fit. One weight tile takes at most `Budget.stream`
bytes: a bigger first tile would only lengthen the load nothing overlaps.

Attention tiles queries (`tq` rows, all KV heads in turn) and keys (`cols` rows of the
cache, then of the new rows): the cache is read once per query tile, the mask once per
query tile when its rows fit, else once per key tile and KV head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.ir import Attribute, SSAValue

from axc.dialects import npu
from axc.dialects.npu import DDR, Access, Affine, element_bits
from axc.npu_builder import rows
from axc.targets import TargetDescriptor

ACC_BYTES = 4
"""fp32 accumulators and softmax state."""


def nbytes(count: int, element: Attribute) -> int:
    return (count * element_bits(element) + 7) // 8


@dataclass(frozen=True)
class Budget:
    """OCM capacity and granularity of one target, and how `tile` shares the capacity."""

    ocm: int
    alignment: int
    gran_m: int
    gran_n: int
    gran_k: int
    burst: int
    """DDR moves whole bursts of this many bytes (the descriptor's `ddr_alignment`)."""
    activations: float = 0.5
    """Share of OCM the activations kept on chip may take at any point (the rest: tiles)."""
    tiles: float = 1.0
    """Share of what the activations leave that one op's tiles may take."""
    ddr_bytes_per_s: float = 0.0
    """Peak DDR rate; with `macs_per_s`, what `seconds` weighs bytes against MACs by (0: bytes only)."""
    macs_per_s: float = 0.0
    """The matrix engine's 16-bit MAC rate on one core."""

    @staticmethod
    def of(target: TargetDescriptor, ocm_bytes: int = 0) -> Budget:
        tile = target.matmul_tile
        # One model core's OCM: tiles are placed in one core's memory (cores split work later).
        capacity = ocm_bytes or target.ocm_bytes_per_core
        macs = target.matrix.macs_per_cycle("bf16") * target.clock_hz
        return Budget(
            capacity, target.ocm_alignment, tile.m, tile.n, tile.k, target.ddr_alignment,
            ddr_bytes_per_s=target.ddr_bytes_per_s, macs_per_s=macs,
        )

    def seconds(self, ddr_bytes: int, macs: int) -> float:
        """How long a schedule of `ddr_bytes` and `macs` (padded) takes, DMA and MACs overlapping."""
        if not self.ddr_bytes_per_s or not self.macs_per_s:
            return 0.0
        return max(ddr_bytes / self.ddr_bytes_per_s, macs / self.macs_per_s)

    def padded(self, total: int, tile: int, gran: int) -> int:
        """`total` in tiles of `tile`, each padded to a multiple of `gran` (the matrix tile)."""
        whole, rest = divmod(total, tile)
        return whole * -(-tile // gran) * gran + -(-rest // gran) * gran

    @property
    def stream(self) -> int:
        """Bytes of one streamed weight tile (KV tiles: half each)."""
        return self.ocm // 8

    def aligned(self, size: int) -> int:
        return -(-size // self.alignment) * self.alignment

    def moved(self, rows: int, row_bytes: int, whole: bool = False) -> int:
        """DDR bytes a DMA box of `rows` rows moves: one run when the rows are whole rows of
        a contiguous array, else every row in whole bursts (as the cost model counts)."""
        if whole:
            return rows * row_bytes
        return rows * -(-row_bytes // self.burst) * self.burst

    def total(self, sizes: Sequence[int]) -> int:
        """OCM taken by buffers of `sizes`, each at an aligned offset."""
        return sum(self.aligned(s) for s in sizes)

    def row_tile(self, total: int, bytes_per_row: float, space: int) -> int:
        """Rows per tile so that `bytes_per_row * rows` fits `space` (a multiple of gran_m when possible)."""
        if bytes_per_row <= 0:
            return total
        count = max(1, min(total, int(space // bytes_per_row)))
        if count < total and count > self.gran_m:
            count -= count % self.gran_m
        return count


@dataclass(eq=False)
class Tensor:
    """An activation `[rows, cols]` (row-major) and where it lives."""

    rows: int
    cols: int
    element: Attribute
    home: str
    value: SSAValue

    @property
    def nbytes(self) -> int:
        return nbytes(self.rows * self.cols, self.element)

    def at(self, start: Affine | int, count: int, col: Affine | int = 0, cols: int | None = None) -> Access:
        return rows(self.value, self.cols, start, count, col, cols)

    def whole(self) -> Access:
        return self.at(0, self.rows)


@dataclass(frozen=True)
class Weight:
    """A linear's weight as the DMA sees it: stored arrays in DDR, their format, the bias."""

    n: int
    k: int
    fmt: str
    group: int
    data: SSAValue
    scales: SSAValue | None = None
    zeros: SSAValue | None = None
    perm: SSAValue | None = None
    bias: SSAValue | None = None

    @property
    def div(self) -> int:
        """Elements per stored data element along K (s4: two per byte)."""
        return 2 if self.fmt == "s4" else 1

    @property
    def data_cols(self) -> int:
        return math.ceil(self.k / self.div)

    def groups(self, kt: int) -> int:
        """Scale columns of a `kt`-wide tile."""
        if self.scales is None:
            return 0
        return 1 if self.group == 0 else math.ceil(kt / self.group)

    @property
    def quantum(self) -> int:
        """K tiles are multiples of this (whole scale groups, whole s4 bytes)."""
        return math.lcm(self.group or 1, self.div)

    def tile_buffers(self, nt: int, kt: int) -> list[int]:
        """Bytes of the OCM buffers of one `[nt, kt]` tile: data, then scales, zeros, bias."""
        sizes = [nt * math.ceil(kt / self.div) * element_bits(npu.element_of(self.data)) // 8]
        for extra in (self.scales, self.zeros):
            if extra is not None:
                sizes.append(nbytes(nt * self.groups(kt), npu.element_of(extra)))
        if self.bias is not None:
            sizes.append(nbytes(nt, npu.element_of(self.bias)))
        return sizes

    @property
    def nbytes(self) -> int:
        """Every stored byte once."""
        return sum(self.tile_buffers(self.n, self.k))

    def moved(self, budget: Budget, kt: int) -> int:
        """DDR bytes of streaming the whole weight once in `kt`-wide K tiles: the rows of a
        split tile are short boxes that move in whole bursts."""
        k_tiles = math.ceil(self.k / kt)
        whole = self.tile_buffers(1, self.k)
        split = self.tile_buffers(1, kt)
        total = 0
        for index, row in enumerate(split):
            bias = self.bias is not None and index == len(split) - 1
            if bias or kt == self.k or (index > 0 and self.group == 0):  # contiguous, or once per N tile
                total += self.n * whole[index]
            else:
                total += k_tiles * budget.moved(self.n, row)
        return total


def divisors(value: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(value) + 1) if value % d == 0]
    return sorted({*small, *(value // d for d in small)})


def halvings(total: int) -> list[int]:
    """`total`, ⌈total/2⌉, ⌈total/4⌉, ..., 1."""
    result = [total]
    while result[-1] > 1:
        result.append(-(-result[-1] // 2))
    return result


@dataclass(frozen=True)
class MatmulSchedule:
    """Tiles and loop order of a linear (see the module docstring)."""

    mt: int
    nt: int
    kt: int
    m_outer: bool
    ddr_bytes: int
    dmas: int
    seconds: float = 0.0
    """`Budget.seconds` of the schedule: its DDR bytes against its padded MACs."""

    def split(self, k: int) -> bool:
        return self.kt < k


def schedule_matmul(
    budget: Budget, space: int, x: Tensor, weights: Sequence[Weight], y: Tensor, tiles: Sequence[Attribute] = ()
) -> MatmulSchedule:
    """The cheapest schedule of `y = x @ W^T` for each of `weights` (one, or gate and up
    with their product tiles of `tiles`' types) whose buffers fit `space` bytes."""
    m, k, n = x.rows, weights[0].k, weights[0].n
    quantum = math.lcm(*(w.quantum for w in weights))
    k_tiles = [k] + [d for d in reversed(divisors(k)) if d < k and d % quantum == 0]
    n_divisors = divisors(n)
    x_ddr, y_ddr = x.home == DDR, y.home == DDR
    x_row, y_row = nbytes(k, x.element), nbytes(n, y.element)

    def sizes(mt: int, nt: int, kt: int, m_outer: bool, copies: int) -> list[int]:
        result: list[int] = []
        for index, w in enumerate(weights):
            result += w.tile_buffers(nt, kt) * copies
            if kt < k:
                result.append((mt if m_outer else m) * nt * ACC_BYTES)
            if tiles:
                result.append(nbytes(mt * nt, tiles[index]))
        if y_ddr:
            result.append(nbytes(mt * nt, y.element))
        if x_ddr:
            result += [nbytes(mt * k, x.element)] if m_outer else [nbytes(mt * kt, x.element)] * copies
        return result

    def widest(mt: int, kt: int, m_outer: bool, copies: int) -> int:
        """The widest N tile that fits (sizes are affine in nt; alignment counted per buffer)."""
        base, step = sizes(mt, 0, kt, m_outer, copies), sizes(mt, 1, kt, m_outer, copies)
        fixed = sum(base) + budget.alignment * len(base)
        per = sum(step) - sum(base)
        stream = budget.stream // max(sum(w.tile_buffers(1, kt)) for w in weights)
        return min(n, stream, (space - fixed) // per if per > 0 else n)

    def cost(mt: int, nt: int, kt: int, m_outer: bool) -> MatmulSchedule:
        m_tiles, n_tiles, k_tiles_ = math.ceil(m / mt), math.ceil(n / nt), math.ceil(k / kt)
        passes = m_tiles if m_outer else 1
        ddr = passes * sum(w.moved(budget, kt) for w in weights)
        if y_ddr:
            ddr += m * y_row if nt == n else n_tiles * budget.moved(m, nbytes(nt, y.element))
        if x_ddr and m_outer:
            ddr += m * x_row
        elif x_ddr:
            ddr += n_tiles * (k_tiles_ * budget.moved(m, nbytes(kt, x.element)) if kt < k else m * x_row)
        dmas = passes * n_tiles * k_tiles_ * sum(len(w.tile_buffers(1, 1)) for w in weights)
        if x_ddr:
            dmas += m_tiles if m_outer else n_tiles * k_tiles_ * m_tiles
        dmas += m_tiles * n_tiles if y_ddr else 0
        macs = len(weights) * budget.padded(m, mt, budget.gran_m) * budget.padded(n, nt, budget.gran_n) * budget.padded(k, kt, budget.gran_k)
        return MatmulSchedule(mt, nt, kt, m_outer, ddr, dmas, budget.seconds(ddr, macs))

    def key(s: MatmulSchedule) -> tuple[float, int, bool, bool, bool, int]:
        narrow = s.nt < min(n, budget.gran_n) or (s.kt < k and s.kt % budget.gran_k != 0)  # the matrix engine pads these
        return (s.seconds, s.ddr_bytes, narrow, s.kt < k, n % s.nt != 0 or m % s.mt != 0, s.dmas)

    for copies in (2, 1):
        found: list[MatmulSchedule] = []
        for m_outer in (False, True) if x_ddr else (False,):
            for kt in k_tiles:
                for mt in halvings(m):
                    top = widest(mt, kt, m_outer, copies)
                    if top < 1:
                        continue
                    rounded = top if top >= n or top < budget.gran_n else top - top % budget.gran_n
                    dividing = max(
                        (d for d in n_divisors if d <= top and (d % budget.gran_n == 0 or top < budget.gran_n)), default=rounded
                    )
                    found += [cost(mt, nt, kt, m_outer) for nt in {rounded, dividing}]
        if found:
            return min(found, key=key)
    # Nothing fits: the smallest tiles; `tile` retries with less on chip, `allocate-ocm` names the overflow.
    return cost(1, 1, k_tiles[-1], False)


@dataclass(frozen=True)
class AttentionSchedule:
    """Query rows per tile, key rows per tile (cache and new rows), and whether the mask
    rows of a query tile are loaded once (else one `[tq, cols]` tile per key tile)."""

    tq: int
    cols: int
    mask_rows: bool
    ddr_bytes: int


@dataclass(frozen=True)
class AttentionShape:
    """What attention's buffers depend on (element types of staged operands, or None when
    the operand lives in OCM)."""

    tokens: int
    history: int
    kv_heads: int
    group: int
    head_dim: int
    cache: Attribute
    mask: Attribute
    new: tuple[Attribute, ...]
    """Element types of the new K/V rows staged from DDR (none when both are in OCM)."""
    query: Attribute | None
    out: Attribute | None

    def sizes(self, tq: int, cols: int, mask_rows: bool, copies: int) -> list[int]:
        g, d = self.group, self.head_dim
        st, sn = min(cols, self.history), min(cols, self.tokens)
        result = [nbytes(st * d, self.cache)] * (2 * copies)
        for element in self.new:
            result += [nbytes(sn * d, element)] * copies
        result += [g * tq * max(st, sn) * ACC_BYTES, *[g * tq * ACC_BYTES] * 3, g * tq * d * ACC_BYTES]
        total = self.history + self.tokens
        result += [nbytes(tq * total, self.mask)] if mask_rows else [nbytes(tq * max(st, sn), self.mask)] * copies
        if self.query is not None:
            result += [nbytes(tq * g * d, self.query)] * copies
        if self.out is not None:
            result.append(nbytes(tq * g * d, self.out))
        return result

    def ddr_bytes(self, budget: Budget, tq: int, cols: int, mask_rows: bool) -> int:
        width = self.kv_heads * self.head_dim
        keys = 2 * nbytes(self.history * width, self.cache)
        keys += sum(nbytes(self.tokens * width, element) for element in self.new)
        total = self.history + self.tokens
        if mask_rows:
            mask = nbytes(self.tokens * total, self.mask)
        else:  # [tq, cols] boxes of the [T, S + T] mask, per KV head
            mask = self.kv_heads * math.ceil(total / cols) * budget.moved(self.tokens, nbytes(cols, self.mask))
        return keys * math.ceil(self.tokens / tq) + mask


def schedule_attention(budget: Budget, space: int, shape: AttentionShape) -> AttentionSchedule:
    """The cheapest attention tiling whose buffers fit `space` bytes."""
    longest = max(shape.history, shape.tokens)
    kv_row = nbytes(shape.head_dim, shape.cache)
    longest = min(longest, max(1, budget.stream // 2 // kv_row))

    def fits(tq: int, cols: int, mask_rows: bool, copies: int) -> bool:
        return budget.total(shape.sizes(tq, cols, mask_rows, copies)) <= space

    for copies in (2, 1):
        found: list[AttentionSchedule] = []
        for tq in halvings(shape.tokens):
            for mask_rows in (True, False):
                if not fits(tq, 1, mask_rows, copies):
                    continue
                low, high = 1, longest  # the widest key tile that fits
                while low < high:
                    mid = (low + high + 1) // 2
                    low, high = (mid, high) if fits(tq, mid, mask_rows, copies) else (low, mid - 1)
                found.append(AttentionSchedule(tq, low, mask_rows, shape.ddr_bytes(budget, tq, low, mask_rows)))
        if found:
            return min(found, key=lambda s: (s.ddr_bytes, -s.tq, -s.cols))
    return AttentionSchedule(1, 1, False, shape.ddr_bytes(budget, 1, 1, False))
