"""An execution plan: a decoded command stream turned into a flat list of numpy calls.

Built once per shape group and reused. Loops are expanded and every operand becomes a
numpy view into the memories (OCM, the parameter blob, DDR scratch, the I/O buffers) at
plan time, so running a group is a loop over pre-bound calls of `axc.npu_semantics` (the
semantics the npu interpreter uses too), with their fp32 work arrays allocated once.

Weights stay in the parameter blob as stored: a pass over the steps tracks which OCM bytes
hold bytes copied there by DMA from the blob and not overwritten since. A matmul whose
weight tile, scales and zeros are such bytes reads them from the blob instead, and
dequantizes the tile into a reused fp32 buffer each time it runs (`axc.sim.dequant`, the
same bits as `npu_semantics.dequantize_tile`) before the same product; a parameter DMA
whose bytes nothing else reads before they are overwritten is then dead and dropped.
One row times an s8 tile (a decode step's matmuls) goes further: `TileGemv` dequantizes a
few rows at a time into a block that stays in the L1 cache and multiplies it right away
with the BLAS call `np.matmul` makes for the whole tile (or, for tiles with one scale per
row, sums four rows in registers in that call's own order), so no fp32 tile is written.
Results are unchanged; the counters still count every instruction.

With two threads (`Workspace.threads`), a run of such matmuls whose inputs no step in
between writes (a decoder layer's gate/up tiles, the lm_head's) is shared with a helper
thread, which computes products from the run's end backwards while this one works
forwards until they meet; every product is committed to OCM at its place in the stream
(`Lookahead`), each with one BLAS thread. A run whose tiles the register kernel takes whole
(`GemvBatch`) is computed at its first matmul in one compiled call per thread, no Python
between its products, and committed the same way.

```python
plan = build_plan(program, memories, specs_in, specs_out, Workspace())
outputs = plan.run([k_cache, v_cache, indices, hidden, mask])
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
import dataclasses
from dataclasses import dataclass, field
from functools import partial
import os
import threading

import numpy as np

from axc import kernels
from axc import npu_semantics as sem
from axc import isa
from axc.isa import Instr, Loop, Node, Operand, Program
from axc.codegen.payload import ProgramCache
from axc.errors import AxcError
from axc.sim.attention import Outer, ProbsByTile, RowsByTile
from axc.sim.dequant import GemvBatch, TileDequantizer, TileGemv
from axc.sim.blas_limit import BLAS
from axc.sim.staging import stage
from axc.sim.vector import cast_into, fuse_steps, products_step, same_view, vector_step

Step = Callable[[], object]
MAX_STEPS = 1 << 22
"""Dynamic instructions a plan expands (a real decoder layer issues a few hundred)."""
FAILURES = (ValueError, IndexError, TypeError, ArithmeticError, AssertionError, KeyError, MemoryError)
"""What numpy and the semantics raise on a well-formed record whose shapes do not agree."""


@dataclass
class Memories:
    """The byte arrays a program addresses (OCM and parameters shared by a file's groups)."""

    ocm: np.ndarray
    params: np.ndarray
    scratch: np.ndarray
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]

    def of(self, space: int, index: int) -> np.ndarray:
        if space == isa.OCM:
            return self.ocm
        if space == isa.PARAMS:
            return self.params
        if space == isa.SCRATCH:
            return self.scratch
        return (self.inputs if space == isa.INPUT else self.outputs)[index]


LOOKAHEAD_MIN_ELEMENTS = 1 << 16
HELPER_MIN_ELEMENTS = 1 << 20
"""Weight elements of a `GemvBatch` below which handing half to the helper (some 40 us of
waking it and waiting) costs more than it saves."""


@dataclass
class Workspace:
    """fp32 work arrays by role and shape, shared by the plans that run one after another
    (the sessions of one executor): a step uses its arrays only while it runs."""

    threads: int = field(default_factory=lambda: min(2, len(os.sched_getaffinity(0))))
    """2: matmul products run ahead on a helper thread (`Lookahead`); 1: one thread."""
    lookahead_elements: int = LOOKAHEAD_MIN_ELEMENTS
    """Weight elements a run of matmuls must dequantize to be worth sharing with the helper."""
    eager_helper: bool = False
    """Tests: the helper computes every product of a run but the first (`Lookahead.eager`)."""
    arrays: dict[tuple[str, tuple[int, ...]], np.ndarray] = field(default_factory=dict)
    analyses: dict[bytes, Analysis] = field(default_factory=dict)
    """By command stream: the layer files of a model share theirs."""
    programs: ProgramCache = field(default_factory=dict)
    """Decoded and checked command streams (`load_payload`'s cache), shared the same way."""

    def analysis(self, commands: bytes, program: Program) -> Analysis:
        """`analyse(program)`, once per distinct command stream `commands`."""
        found = self.analyses.get(commands)
        if found is None:
            found = self.analyses[commands] = analyse(program)
        return found

    def get(self, role: str, shape: tuple[int, ...]) -> np.ndarray:
        array = self.arrays.get((role, shape))
        if array is None:
            array = self.arrays[role, shape] = np.zeros(shape, np.float32)
        return array

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())


def view(memory: np.ndarray, operand: Operand, address: int) -> np.ndarray:
    """The typed strided view of `operand` at `address`."""
    return np.ndarray(operand.sizes, isa.DTYPE_OF_CODE[operand.dtype], memory, address, operand.strides)


def span(operand: Operand, address: int) -> tuple[int, int]:
    """Bytes `[low, high)` of `operand` at `address`."""
    low, high = operand.box
    return address + low, address + high


def is_dense(operand: Operand) -> bool:
    """True when the operand's bytes are one gap-free, non-overlapping range."""
    dims = sorted((stride, size) for size, stride in zip(operand.sizes, operand.strides) if size != 1)
    step = operand.itemsize
    for stride, size in dims:
        if stride != step:
            return False
        step *= size
    return True


def is_row_major(operand: Operand) -> bool:
    """True when the operand's elements lie in C order, back to back."""
    step = operand.itemsize
    for size, stride in zip(reversed(operand.sizes), reversed(operand.strides)):
        if size != 1 and stride != step:
            return False
        step *= size
    return True


def expand(body: Sequence[Node], ivs: tuple[int, ...] = ()) -> Iterator[tuple[Instr, tuple[int, ...]]]:
    for node in body:
        if isinstance(node, Loop):
            for i in range(node.trips):
                yield from expand(node.body, (*ivs, i))
        else:
            yield node, ivs


def rope_spec(instr: Instr) -> kernels.RopeSpec:
    return kernels.RopeSpec.from_values({imm.name: value for imm, value in zip(instr.op.imms, instr.values)})


def _dma(dst: np.ndarray, src: np.ndarray) -> Step:
    try:
        return partial(np.copyto, dst, src.reshape(dst.shape, copy=False))
    except ValueError:
        return partial(sem.dma, dst, src)


# One entry per vector opcode: the npu_semantics call on the operand views and immediates.
VECTOR: dict[str, Callable[[dict[str, np.ndarray], Instr], Step]] = {
    "fill": lambda v, i: partial(sem.fill, v["out"], float(i.value("value"))),
    "cast": lambda v, i: partial(sem.cast, v["out"], v["input"]),
    "act": lambda v, i: partial(sem.act, v["out"], v["input"], str(i.value("kind"))),
    "add": lambda v, i: partial(sem.binary, "add", v["out"], v["lhs"], v["rhs"]),
    "mul": lambda v, i: partial(sem.binary, "mul", v["out"], v["lhs"], v["rhs"]),
    "div": lambda v, i: partial(sem.binary, "div", v["out"], v["lhs"], v["rhs"]),
    "act_mul": lambda v, i: partial(sem.act_mul, v["out"], v["gate"], v["up"], str(i.value("kind"))),
    "rms_norm": lambda v, i: partial(sem.rms_norm, v["out"], v["input"], v["weight"], float(i.value("eps"))),
    "add_rms_norm": lambda v, i: partial(sem.add_rms_norm, v["sum"], v["out"], v["lhs"], v["rhs"], v["weight"], float(i.value("eps"))),
    "layer_norm": lambda v, i: partial(sem.layer_norm, v["out"], v["input"], v["weight"], v.get("bias"), float(i.value("eps"))),
    "rope": lambda v, i: partial(
        sem.rope, v["out"], v["input"], v["positions"], int(i.value("num_heads")), rope_spec(i), v.get("ext_factors")
    ),
    "online_softmax": lambda v, i: partial(sem.online_softmax, v["probs"], v["max"], v["sum"], v["corr"], v["scores"]),
    "gather": lambda v, i: partial(sem.gather, v["out"], v["input"], v["indices"]),
    "topk": lambda v, i: partial(sem.topk, v["values"], v["indices"], v["input"], int(i.value("k"))),
    "head_norm": lambda v, i: partial(sem.head_norm, v["out"], v["input"], v["weight"], float(i.value("eps")), int(i.value("head_dim"))),
    "softcap": lambda v, i: partial(sem.softcap, v["out"], v["input"], float(i.value("cap"))),
    "iota": lambda v, i: partial(sem.iota, v["out"]),
    "window_mask": lambda v, i: partial(
        sem.window_mask, v["out"], v["scores"], v["query_positions"], v["key_positions"], int(i.value("window"))
    ),
}
assert set(VECTOR) == {op.mnemonic for op in isa.OPCODES if op.engine == "vector"}


@dataclass(frozen=True)
class MatmulStep:
    """`npu_semantics.product` with its fp32 temporaries allocated once: the same
    operations on the same contiguous fp32 arrays, so the same BLAS calls and bits.
    `product` reads `lhs` and the weights and writes only the step's own work arrays,
    `complete` reads the bias (and `out` to accumulate) and writes `out`, so a lookahead
    (`Lookahead`) may compute a product early."""

    out: np.ndarray
    lhs: np.ndarray
    a: np.ndarray
    dequantizer: TileDequantizer | None
    """Fills `b` with the dequantized weight tile; None: `b` is loaded from `rhs`."""
    rhs: np.ndarray
    b: np.ndarray
    """fp32 work array of the right-hand side."""
    result: np.ndarray
    bias: np.ndarray | None
    """The bias view loaded at each call; None when absent or constant (then `bias32` holds it)."""
    bias32: np.ndarray | None
    alpha: np.float32 | None
    transpose_b: bool
    accumulate: np.ndarray | None
    """fp32 work array for `out`'s old value (accumulate), or None."""
    gemv: TileGemv | None = None
    """One row times the transposed tile, dequantized a few rows at a time (`b` unused)."""
    cast: bool = True
    """False: `a` holds `lhs` already (a `Lookahead` whose products share one `lhs` casts it once)."""

    def __call__(self) -> None:
        self.complete(self.product())

    def product(self) -> np.ndarray:
        """The product of `lhs` and the weights, not yet scaled or biased (it reads
        nothing else, so a `Lookahead` may compute it early)."""
        if self.cast:
            np.copyto(self.a, self.lhs, casting="unsafe")
        if self.gemv is not None:
            return self.gemv(self.a, self.result)
        return self.tile_product()

    def complete(self, product: np.ndarray) -> None:
        """`product` scaled, biased and committed, at the matmul's place in the stream."""
        self.commit(self.finish(product))

    def finish(self, result: np.ndarray) -> np.ndarray:
        """The product `result` scaled and biased (in place)."""
        if self.alpha is not None:
            np.multiply(result, self.alpha, out=result)
        if self.bias32 is not None:
            if self.bias is not None:
                np.copyto(self.bias32, self.bias, casting="unsafe")
            np.add(result, self.bias32, out=result)
        return result

    def tile_product(self) -> np.ndarray:
        if self.dequantizer is not None:
            b = self.dequantizer(self.b)
        else:
            b = self.b
            cast_into(b, self.rhs)
        b = b.swapaxes(-1, -2) if self.transpose_b else b
        if self.result.ndim > 2:  # numpy's batched matmul is many times slower with `out=`
            return np.matmul(self.a, b)
        return np.matmul(self.a, b, out=self.result)

    def commit(self, result: np.ndarray) -> None:
        if self.accumulate is not None:
            np.copyto(self.accumulate, self.out, casting="unsafe")
            np.add(self.accumulate, result, out=result)
        np.copyto(self.out, result, casting="unsafe")

    def in_lane(self, workspace: Workspace, lane: int, position: int, cast: bool) -> MatmulStep:
        """This step over lane `lane`'s work arrays, with the helper's result array of
        `position` in its run (runs never overlap in time, so their products share these;
        this thread commits its products at once, lane 0 keeps the one result array);
        `cast` False: the run casts the shared `lhs` into `a` itself."""
        bias32 = self.bias32 if self.bias is None else workspace.get(f"bias@{lane}", self.bias.shape)
        gemv = None if self.gemv is None else TileGemv(self.gemv.tile, workspace.get(f"block@{lane}", self.gemv.block.shape))
        return dataclasses.replace(
            self, a=workspace.get(f"lhs@{lane}" if cast else f"run lhs@{lane}", self.a.shape),
            b=self.b if gemv else workspace.get(f"rhs@{lane}", self.b.shape),
            result=workspace.get(f"result@{lane}.{position}", self.result.shape) if lane else self.result,
            bias32=bias32, gemv=gemv, cast=cast,
        )


_helpers: dict[int, ThreadPoolExecutor] = {}


def helper_thread() -> ThreadPoolExecutor:
    """The lookaheads' helper thread of this process (a forked child starts its own)."""
    pid = os.getpid()
    if pid not in _helpers:
        _helpers.clear()
        _helpers[pid] = ThreadPoolExecutor(1, thread_name_prefix="axc-sim")
    return _helpers[pid]


MAIN, HELPER = 1, 2
"""Who claimed a product of a `Lookahead` (0: nobody yet)."""


@dataclass
class Lookahead:
    """A run of weight matmuls whose products this thread and the helper share.

    The plan starts it at the run's first matmul: the helper then claims and computes the
    products from the run's end backwards, while this thread, at each matmul of the run,
    computes the product itself unless the helper has claimed it, so the two meet where
    their work balances. Every product is committed by this thread at its place in the
    stream, so every write to the memories happens in order. Valid because nothing
    between the run's first matmul and its last writes what their products read
    (`lookahead_runs`); each product is the same single-threaded computation on either
    thread. `eager`: the helper claims every product but the first before this thread
    goes on (tests: the helper's path taken every time)."""

    steps: tuple[MatmulStep, ...]
    ahead: tuple[MatmulStep, ...]
    """The same steps over the helper's work arrays (none with a batch: it has its own)."""
    eager: bool = False
    batch: GemvBatch | None = None
    """Every product of the run at its start, in one compiled call per thread (a run of
    `TileGemv`s `GemvBatch` takes whole); None: products claimed one by one."""
    owner: list[int] = field(default_factory=list)
    results: list[np.ndarray | None] = field(default_factory=list)
    done: list[threading.Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    future: Future[None] | None = None

    def __post_init__(self) -> None:
        count = 0 if self.batch is not None else len(self.steps)  # a batch claims no products one by one
        self.owner, self.results, self.done = [0] * count, [None] * count, [threading.Event() for _ in range(count)]

    def start(self) -> None:
        if self.batch is not None:
            self.start_batch(self.batch)
            return
        with self.lock:  # a helper still looking for work in the previous call sees the new state whole
            for index in range(len(self.steps)):
                self.owner[index], self.results[index] = 0, None
                self.done[index].clear()
            self.owner[0] = MAIN
        self.cast_lhs(self.steps[0])
        self.future = helper_thread().submit(self.work)
        if self.eager:
            wait([self.future])

    def start_batch(self, batch: GemvBatch) -> None:
        """This thread and the helper share the products, each claiming chunks as it goes
        (`eager`: the helper computes all; a run too small to pay for the hand-over: this
        thread alone); all done before the run's first commit."""
        batch.cast([self.steps[0].lhs] if len(batch.inputs) == 1 else [step.lhs for step in self.steps])
        if self.eager:
            self.future = helper_thread().submit(batch.compute, 0, batch.count)
            self.future.result()
            self.future = None
        elif batch.elements < HELPER_MIN_ELEMENTS:
            batch.compute(0, batch.count)
        else:
            batch.claim()
            self.future = helper_thread().submit(batch.share)
            batch.share()
            self.future.result()
            self.future = None
        batch.repair()

    @staticmethod
    def cast_lhs(step: MatmulStep) -> None:
        """The run's shared `lhs` into the lane's `a`, once (the steps do not cast it)."""
        if not step.cast:
            np.copyto(step.a, step.lhs, casting="unsafe")

    def work(self) -> None:
        claimed = []
        try:
            self.cast_lhs(self.ahead[0])
            for index in range(len(self.steps) - 1, 0, -1):
                with self.lock:
                    if self.owner[index]:
                        return
                    self.owner[index] = HELPER
                claimed.append(index)
                self.results[index] = self.ahead[index].product()
                self.done[index].set()
        finally:
            for index in claimed:
                self.done[index].set()  # after a failure too: this thread then reads the error

    def run(self, index: int) -> None:
        """The run's `index`-th matmul, at its place in the stream."""
        with self.lock:
            mine = self.owner[index] != HELPER
            self.owner[index] = MAIN
        step = self.steps[index]
        if mine:
            step()
            return
        self.done[index].wait()
        result = self.results[index]
        if result is None:
            assert self.future is not None
            self.future.result()  # raises the helper's error
            raise AssertionError("the helper claimed a product it did not compute")
        step.complete(result)

    def settle(self) -> None:
        """Wait for a started helper (after a failure: its work arrays are reused next run)."""
        future, self.future = self.future, None
        if future is not None:
            wait([future])


@dataclass(frozen=True)
class Batched:
    """The first matmul of a `Lookahead` with a `GemvBatch`: every product of the run,
    then this one's commit (the others' commits are plain steps: `batched_commit`)."""

    lookahead: Lookahead

    def __call__(self) -> None:
        lookahead, batch = self.lookahead, self.lookahead.batch
        assert batch is not None
        lookahead.start()
        lookahead.steps[0].complete(batch.results[0])


def batched_commit(step: MatmulStep, product: np.ndarray) -> Step:
    """`step.complete(product)`, a bare copy when there is nothing to scale, bias or add."""
    if step.alpha is None and step.bias32 is None and step.accumulate is None:
        return partial(np.copyto, step.out, product, casting="unsafe")
    return partial(step.complete, product)


@dataclass(frozen=True)
class Shared:
    """The `index`-th matmul of a `Lookahead` (the first starts it)."""

    lookahead: Lookahead
    index: int

    def __call__(self) -> None:
        if self.index == 0:
            self.lookahead.start()
        self.lookahead.run(self.index)


def product_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape `np.matmul` gives for operands of rank >= 2, or None."""
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        return None
    try:
        return (*np.broadcast_shapes(a[:-2], b[:-2]), a[-2], b[-1])
    except ValueError:
        return None


@dataclass
class Plan:
    """Pre-bound steps of one group; `run` stages inputs, runs them, and reads outputs."""

    steps: list[Step]
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    counters: sem.Counters
    instructions: int
    lookaheads: list[Lookahead] = field(default_factory=list)
    one_blas: bool = False
    """Run with one BLAS thread (lookaheads, `TileGemv` row blocks: each call single-threaded)."""

    def run(self, inputs: Sequence[np.ndarray], as_stored: bool = False) -> list[np.ndarray]:
        """Outputs as fp32 for floats (`as_stored`: in their stored dtypes), fresh copies."""
        for staged, value in zip(self.inputs, inputs, strict=True):
            stage(staged, value)
        try:
            with BLAS.running(self.one_blas):
                for step in self.steps:
                    step()
        except FAILURES as error:
            for lookahead in self.lookaheads:
                lookahead.settle()
            raise AxcError(f"command stream cannot be executed ({type(error).__name__}: {error}); the file is corrupt, rebuild it") from None
        for lookahead in self.lookaheads:
            lookahead.future = None
        return [out.astype(np.float32) if out.dtype.kind in "fV" and not as_stored else out.copy() for out in self.outputs]


@dataclass
class ParamLoad:
    """A DMA that copied parameter bytes `[source, source + high - low)` to OCM `[low, high)`."""

    index: int
    low: int
    high: int
    source: int


@dataclass(frozen=True)
class Planned:
    """One instruction the plan keeps: its operands' addresses in this iteration, and
    where an operand is read from the parameter blob instead of OCM."""

    instr: Instr
    addresses: dict[str, int]
    blob: dict[str, int]
    fast: bool
    """A matmul run as a `MatmulStep`."""


@dataclass(frozen=True)
class Analysis:
    """What a program does to OCM, worked out once per command stream (it depends on the
    records only, so files with the same stream share it)."""

    planned: list[Planned]
    counters: sem.Counters
    instructions: int
    runs: list[tuple[list[int], int]] = field(default_factory=list)
    """`lookahead_runs(planned)`: runs of weight matmuls and their weight elements."""


def _dtype(operand: Operand) -> np.dtype:
    return isa.DTYPE_OF_CODE[operand.dtype]


class _Analyser:
    """Expands a program while tracking which OCM bytes hold parameter bytes."""

    def __init__(self, program: Program):
        self.program = program
        self.live: list[ParamLoad] = []
        self.needed: set[int] = set()
        self.param_loads: set[int] = set()
        self.entries: list[Planned] = []
        self.counters = sem.Counters(calls=1)

    def read(self, operand: Operand | None, address: int) -> None:
        """A read of OCM: the parameter DMAs that wrote those bytes must run."""
        if operand is None or operand.space != isa.OCM:
            return
        low, high = span(operand, address)
        for load in self.live:
            if load.low < high and low < load.high:
                self.needed.add(load.index)

    def clobber(self, operand: Operand, address: int) -> None:
        """A write of OCM: what it overwrites of a load is forgotten, the bytes of the load
        it leaves stay live (a read of them makes the load run). A strided write that
        overlaps a load makes it run (its bytes between the write's are not tracked)."""
        if operand.space != isa.OCM:
            return
        low, high = span(operand, address)
        dense = is_dense(operand)
        kept = []
        for load in self.live:
            if load.high <= low or high <= load.low:
                kept.append(load)
            elif not dense:
                self.needed.add(load.index)
            else:
                if load.low < low:
                    kept.append(ParamLoad(load.index, load.low, low, load.source))
                if high < load.high:
                    kept.append(ParamLoad(load.index, high, load.high, load.source + high - load.low))
        self.live = kept

    def blob_address(self, operand: Operand | None, address: int) -> int | None:
        """Where the operand's bytes are in the parameter blob, when a live load holds them all."""
        if operand is None:
            return None
        if operand.space == isa.PARAMS:
            return address
        if operand.space != isa.OCM:
            return None
        low, high = span(operand, address)
        for load in reversed(self.live):
            if load.low <= low and high <= load.high:
                return load.source + address - load.low
        return None

    def run(self) -> Analysis:
        for instr, ivs in expand(self.program.body):
            addresses = {name: operand.address(ivs) for name, operand in instr.named()}
            if instr.op.engine == "dma":
                self.dma(instr, addresses)
            elif instr.op.mnemonic == "matmul":
                self.matmul(instr, addresses)
            else:
                for name, operand in instr.named():
                    if name not in instr.op.outputs:
                        self.read(operand, addresses[name])
                for name in instr.op.outputs:
                    written = instr.operand(name)
                    if written is not None:
                        self.clobber(written, addresses[name])
                self.entries.append(Planned(instr, addresses, {}, False))
                self.counters.vector_ops += max(o.numel for _, o in instr.named())
        kept = [e for index, e in enumerate(self.entries) if index not in self.param_loads or index in self.needed]
        return Analysis(kept, self.counters, sum(1 for _ in isa.walk(self.program.body)), lookahead_runs(kept))

    def dma(self, instr: Instr, addresses: dict[str, int]) -> None:
        src, dst = instr.operands
        assert src is not None and dst is not None
        index = len(self.entries)
        self.counters.dma_ops += 1
        if instr.op.mnemonic == "dma_load":
            self.counters.ddr_read += src.nbytes
        else:
            self.counters.ddr_write += src.nbytes
        self.read(src, addresses["src"])
        self.clobber(dst, addresses["dst"])
        if (
            src.space == isa.PARAMS and dst.space == isa.OCM and src.itemsize == dst.itemsize
            and src.numel == dst.numel and is_row_major(src) and is_row_major(dst)
        ):
            low = addresses["dst"]
            self.live.append(ParamLoad(index, low, low + dst.nbytes, addresses["src"]))
            self.param_loads.add(index)
        self.entries.append(Planned(instr, addresses, {}, False))

    def matmul(self, instr: Instr, addresses: dict[str, int]) -> None:
        fmt, group = str(instr.value("format")), int(instr.value("group"))
        lhs, rhs, scales, zeros, bias, out = instr.operands
        assert lhs is not None and rhs is not None and out is not None
        self.counters.add_macs(fmt, int(out.numel * lhs.sizes[-1]))
        self.read(lhs, addresses["lhs"])
        if instr.value("accumulate"):
            self.read(out, addresses["out"])
        weights = {name: (o, self.blob_address(o, addresses.get(name, 0))) for name, o in (("rhs", rhs), ("scales", scales), ("zeros", zeros)) if o is not None}
        folded = all(a is not None for _, a in weights.values()) and TileDequantizer.supports(
            fmt, group, _dtype(rhs), rhs.sizes, None if scales is None else _dtype(scales),
            0 if scales is None else scales.numel, None if zeros is None else zeros.numel,
        )
        rhs_shape = rhs.sizes if not folded or fmt != "s4" else (rhs.sizes[0], 2 * rhs.sizes[1])
        fast = fast_matmul(instr, rhs_shape, folded)
        blob: dict[str, int] = {}
        if fast and folded:
            blob = {name: a for name, (_, a) in weights.items()}  # type: ignore[misc]  # folded means every address is an int, not None
        else:
            for name, (operand, _) in weights.items():
                self.read(operand, addresses[name])
        bias_address = self.blob_address(bias, addresses.get("bias", 0))
        if fast and bias_address is not None:
            blob["bias"] = bias_address
        else:
            self.read(bias, addresses.get("bias", 0))
        self.entries.append(Planned(instr, addresses, blob, fast))
        self.clobber(out, addresses["out"])


def fast_matmul(instr: Instr, rhs_shape: tuple[int, ...], folded: bool) -> bool:
    """Whether a matmul can run as a `MatmulStep` (float operands, shapes as `product` needs)."""
    lhs, rhs, _, _, bias, out = instr.operands
    assert lhs is not None and rhs is not None and out is not None
    if len(rhs_shape) < 2 or not folded and (str(instr.value("format")) != "float" or _dtype(rhs).kind not in "fV"):
        return False
    b_shape = (*rhs_shape[:-2], *((rhs_shape[-1], rhs_shape[-2]) if instr.value("transpose_b") else rhs_shape[-2:]))
    shape = product_shape(lhs.sizes, b_shape)
    if shape != out.sizes or _dtype(out).kind not in "fV" or _dtype(lhs).kind not in "fV":
        return False
    if bias is None:
        return True
    try:
        return _dtype(bias).kind in "fV" and np.broadcast_shapes(shape, bias.sizes) == shape
    except ValueError:
        return False


def bind(analysis: Analysis, memories: Memories, workspace: Workspace) -> list[Step]:
    """The steps of an analysed program over `memories`."""
    steps: list[Step] = []
    for entry in analysis.planned:
        instr = entry.instr
        views = {
            name: view(memories.params, o, entry.blob[name]) if name in entry.blob
            else view(memories.of(o.space, o.index), o, entry.addresses[name])
            for name, o in instr.named()
        }
        if instr.op.engine == "dma":
            steps.append(_dma(views["dst"], views["src"]))
        elif instr.op.mnemonic == "matmul":
            steps.append(matmul_step(instr, views, entry, workspace))
        else:
            steps.append(vector_op(instr, views, workspace))
    return steps


def vector_op(instr: Instr, views: dict[str, np.ndarray], workspace: Workspace) -> Step:
    """A vector instruction's step: specialised (`axc.sim.vector`) or its `npu_semantics` call."""
    fallback = VECTOR[instr.op.mnemonic](views, instr)
    values = {imm.name: value for imm, value in zip(instr.op.imms, instr.values)}
    fast = vector_step(instr.op.mnemonic, views, values, fallback, workspace.get)
    return fallback if fast is None else fast


def matmul_step(instr: Instr, views: dict[str, np.ndarray], entry: Planned, workspace: Workspace) -> Step:
    fmt, group = str(instr.value("format")), int(instr.value("group"))
    alpha, transpose_b, accumulate = float(instr.value("alpha")), bool(instr.value("transpose_b")), bool(instr.value("accumulate"))
    out, lhs, rhs = views["out"], views["lhs"], views["rhs"]
    bias = views.get("bias")
    if not entry.fast:
        return partial(
            sem.matmul, out, lhs, rhs, fmt=fmt, scales=views.get("scales"), zeros=views.get("zeros"), group=group,
            bias=bias, alpha=alpha, transpose_b=transpose_b, accumulate=accumulate,
        )
    if "rhs" not in entry.blob and bias is None:
        small = (
            RowsByTile.of(out, lhs, rhs, alpha, workspace.get) if transpose_b and not accumulate
            else None if transpose_b else Outer.of(out, lhs, rhs, alpha, accumulate, workspace.get)
            or ProbsByTile.of(out, lhs, rhs, alpha, accumulate, workspace.get)
        )
        if small is not None:
            return small
    dequantizer = gemv = None
    if "rhs" in entry.blob:
        dequantizer = TileDequantizer.checked(rhs, fmt, views.get("scales"), views.get("zeros"), group)  # the analysis checked it
        if transpose_b and lhs.ndim == 2 and lhs.shape[0] == 1 and TileGemv.supports(dequantizer):
            cols = dequantizer.shape[1]
            gemv = TileGemv(dequantizer, workspace.get("block", (TileGemv.block_rows(cols), cols)))
    constant = "bias" in entry.blob
    return MatmulStep(
        out=out,
        lhs=lhs,
        a=workspace.get("lhs", lhs.shape),
        dequantizer=dequantizer,
        rhs=rhs,
        b=workspace.get("rhs", (0, 0) if gemv else rhs.shape if dequantizer is None else dequantizer.shape),
        result=workspace.get("result", out.shape),
        bias=None if constant else bias,
        bias32=None if bias is None else bias.astype(np.float32) if constant else workspace.get("bias", bias.shape),
        alpha=None if alpha == 1.0 else np.float32(alpha),
        transpose_b=transpose_b,
        accumulate=workspace.get("accumulate", out.shape) if accumulate else None,
        gemv=gemv,
    )


Span = tuple[int, int, int, int]
"""Bytes `[low, high)` of memory (space, index)."""


def _spans(entry: Planned, names: Sequence[str]) -> list[Span]:
    spans = []
    for name in names:
        operand = entry.instr.operand(name)
        if operand is not None and name not in entry.blob and operand.space != isa.PARAMS:
            index = operand.index if operand.space in (isa.INPUT, isa.OUTPUT) else 0
            spans.append((operand.space, index, *span(operand, entry.addresses[name])))
    return spans


def _written(entry: Planned) -> list[Span]:
    op = entry.instr.op
    return _spans(entry, ["dst"] if op.engine == "dma" else sorted(op.outputs))


@dataclass
class Written:
    """Byte ranges written so far, merged per memory (streams write mostly in order)."""

    ranges: dict[tuple[int, int], list[list[int]]] = field(default_factory=dict)

    def add(self, spans: list[Span]) -> None:
        for space, index, low, high in spans:
            ranges = self.ranges.setdefault((space, index), [])
            for r in reversed(ranges[-4:]):  # the recent ones: a tile buffer rewritten, a row stored after the last
                if r[0] <= high and low <= r[1]:
                    r[0], r[1] = min(r[0], low), max(r[1], high)
                    break
            else:
                ranges.append([low, high])

    def overlaps(self, spans: list[Span]) -> bool:
        return any(
            r[0] < high and low < r[1] for space, index, low, high in spans for r in self.ranges.get((space, index), ())
        )


def is_weight_matmul(entry: Planned) -> bool:
    """A matmul run as a `MatmulStep` over a dequantized tile of the parameter blob."""
    return entry.fast and "rhs" in entry.blob


def weight_elements(entry: Planned) -> int:
    rhs = entry.instr.operand("rhs")
    assert rhs is not None
    return rhs.numel * (2 if str(entry.instr.value("format")) == "s4" else 1)


def lookahead_runs(planned: Sequence[Planned]) -> list[tuple[list[int], int]]:
    """Runs of weight matmuls whose products can all be computed at the run's first one:
    no step from the first to the last writes bytes a product reads (the input row and
    the weights; the bias is read when the product is committed), as indices, with
    their weight elements."""
    runs: list[tuple[list[int], int]] = []
    current: list[int] = []
    size = 0
    written = Written()
    for index, entry in enumerate(planned):
        if is_weight_matmul(entry):
            if not current:
                written = Written()  # what was written before the run is read as it is at its start
            elif written.overlaps(_spans(entry, ["lhs", "rhs", "scales", "zeros"])):  # the bias is read at its commit
                runs.append((current, size))
                current, size, written = [], 0, Written()
            current.append(index)
            size += weight_elements(entry)
        written.add(_written(entry))
    runs.append((current, size))
    return [(run, elements) for run, elements in runs if len(run) > 1]


def add_lookaheads(analysis: Analysis, steps: list[Step | None], memories: Memories, workspace: Workspace) -> list[Lookahead]:
    """Share every run of weight matmuls big enough to be worth it with the helper (steps
    a forwarded run leaves out become None)."""
    lookaheads = []
    for group, elements in analysis.runs:
        if elements < workspace.lookahead_elements:
            continue
        matmuls = [step for step in (steps[i] for i in group) if isinstance(step, MatmulStep)]
        assert len(matmuls) == len(group), "the runs are of weight matmuls"
        first = matmuls[0].lhs
        cast = not all(same_view(m.lhs, first) for m in matmuls)
        mine = tuple(m if cast else m.in_lane(workspace, 0, k, cast) for k, m in enumerate(matmuls))
        batch = GemvBatch.of([m.gemv for m in matmuls if m.gemv is not None], shared=not cast) if all(m.gemv for m in matmuls) else None
        ahead = () if batch is not None else tuple(m.in_lane(workspace, 1, k, cast) for k, m in enumerate(matmuls))
        lookahead = Lookahead(mine, ahead, workspace.eager_helper, batch)
        for k, index in enumerate(group):
            if batch is None:
                steps[index] = Shared(lookahead, k)
            else:
                steps[index] = Batched(lookahead) if k == 0 else batched_commit(mine[k], batch.results[k])
        if batch is not None:
            forward_stores(group, analysis.planned, steps, memories, lookahead)
            fuse_elementwise(group, analysis.planned, steps, memories, workspace, lookahead)
            coalesce_commits(group, analysis.planned, steps, memories, lookahead)
        lookaheads.append(lookahead)
    return lookaheads


def forward_stores(group: list[int], planned: Sequence[Planned], steps: list[Step | None], memories: Memories, lookahead: Lookahead) -> None:
    """A batched run whose every product is stored by the next step, a DMA of exactly its
    result bytes (one OCM buffer) to the place after the previous one (the lm_head's
    tiles to the logits), becomes its products written there in one copy, and the buffer
    left holding the last one: what the pairs of commit and DMA leave, in two steps
    rather than 2 x tiles (`Forwarded`)."""
    batch = lookahead.batch
    assert batch is not None
    if len(group) < 2 or group != list(range(group[0], group[0] + 2 * len(group), 2)) or group[-1] + 1 >= len(planned):
        return
    buffer = planned[group[0]].instr.operand("out")
    stores = [planned[index + 1] for index in group]
    first = stores[0].instr.operand("dst")
    assert buffer is not None and first is not None
    out_at, store_at = planned[group[0]].addresses["out"], stores[0].addresses["dst"]
    for k, (index, store) in enumerate(zip(group, stores)):
        src, dst, out = store.instr.operand("src"), store.instr.operand("dst"), planned[index].instr.operand("out")
        step = lookahead.steps[k]
        if (
            store.instr.op.engine != "dma" or src is None or dst is None or out is None
            or step.alpha is not None or step.bias32 is not None or step.accumulate is not None
            or planned[index].addresses["out"] != out_at or store.addresses["src"] != out_at
            or not (out.sizes == src.sizes == buffer.sizes and out.dtype == src.dtype == dst.dtype and dst.numel == out.numel)
            or not (is_row_major(out) and is_row_major(src) and is_row_major(dst))
            or (dst.space, dst.index) != (first.space, first.index) or store.addresses["dst"] != store_at + k * dst.nbytes
            or dst.space in (isa.OCM, isa.PARAMS)
        ):
            return
    dtype = isa.DTYPE_OF_CODE[first.dtype]
    logits = np.ndarray((batch.y.size,), dtype, memories.of(first.space, first.index), store_at + first.box[0])
    steps[group[0]] = Forwarded(lookahead, logits, view(memories.of(buffer.space, buffer.index), buffer, out_at))
    for index in group:
        steps[index + 1] = None
        if index != group[0]:
            steps[index] = None


def fuse_elementwise(
    group: list[int], planned: Sequence[Planned], steps: list[Step | None], memories: Memories, workspace: Workspace,
    lookahead: Lookahead,
) -> None:
    """A batched run of m matmuls then one elementwise vector op, n times (the MLP's gate
    and up tiles, each pair then `act_mul`): the same m OCM buffers each time, the op
    reading exactly them and writing the place after its previous output. The op runs
    once over all n tiles, its inputs the products rounded as their commits store them;
    the buffers are left holding the last products. Elementwise, so the same bits as n
    calls; two steps rather than n x (m + 1)."""
    batch = lookahead.batch
    assert batch is not None
    m = next((j for j, index in enumerate(group) if index != group[0] + j), len(group))
    n = len(group) // m
    after = group[-1] + 1
    if m * n != len(group) or after >= len(planned) or planned[group[0] + m].instr.op.mnemonic not in ELEMENTWISE:
        return
    op = planned[group[0] + m]
    buffers = [planned[group[0] + j] for j in range(m)]
    inputs = {name: o for name, o in op.instr.named() if name not in op.instr.op.outputs}
    outputs = [name for name in op.instr.op.outputs if op.instr.operand(name) is not None]
    result = op.instr.operand(outputs[0]) if len(outputs) == 1 else None
    sources: dict[str, int] = {}
    for name, operand in inputs.items():
        match = [j for j, b in enumerate(buffers) if span(operand, op.addresses[name]) == span(_out(b), b.addresses["out"])]
        if len(match) != 1 or operand.dtype != _out(buffers[match[0]]).dtype or operand.sizes != _out(buffers[match[0]]).sizes:
            return
        sources[name] = match[0]
    if result is None or not is_row_major(result) or len(sources) != m or not all(is_row_major(_out(b)) for b in buffers):
        return
    written = (result.space, result.index, op.addresses[outputs[0]] + result.box[0], op.addresses[outputs[0]] + result.box[0] + n * result.nbytes)
    for b in buffers:  # the outputs must not touch the buffers: their last contents are restored after the op
        low, high = span(_out(b), b.addresses["out"])
        if (_out(b).space, _out(b).index) == written[:2] and low < written[3] and written[2] < high:
            return
    for k in range(n):
        vector = planned[group[0] + k * (m + 1) + m]
        if (
            vector.instr.op is not op.instr.op or vector.instr.values != op.instr.values
            or any(vector.addresses[name] != op.addresses[name] for name in inputs)
            or vector.addresses[outputs[0]] != op.addresses[outputs[0]] + k * result.nbytes
            or any(group[k * m + j] != group[0] + k * (m + 1) + j for j in range(m))
        ):
            return
        for j in range(m):
            entry = planned[group[k * m + j]]
            step = lookahead.steps[k * m + j]
            if entry.addresses["out"] != buffers[j].addresses["out"] or step.alpha is not None or step.bias32 is not None or step.accumulate is not None:
                return
    if len({r.size for r in batch.results}) != 1:
        return
    numel = batch.results[0].size
    staged = {name: np.zeros((n, numel), isa.DTYPE_OF_CODE[_out(buffers[j]).dtype]) for name, j in sources.items()}
    memory = memories.of(result.space, result.index)
    whole = np.ndarray((n, numel), isa.DTYPE_OF_CODE[result.dtype], memory, op.addresses[outputs[0]] + result.box[0])
    views = {**staged, outputs[0]: whole}
    kept = [view(memories.of(_out(b).space, _out(b).index), _out(b), b.addresses["out"]) for b in buffers]
    fused = Fused(lookahead, batch.y.reshape(n, m, numel), staged, sources, vector_op(op.instr, views, workspace), kept)
    values = {imm.name: value for imm, value in zip(op.instr.op.imms, op.instr.values)}
    inputs_of = {name: (j, staged[name].dtype) for name, j in sources.items()}
    direct = products_step(op.instr.op.mnemonic, values, whole, fused.products, inputs_of, fused.apply, workspace.get)
    steps[group[0]] = fused if direct is None else dataclasses.replace(fused, staged={}, sources={}, op=direct)
    for index in range(group[0] + 1, after + 1):
        steps[index] = None


def coalesce_commits(group: list[int], planned: Sequence[Planned], steps: list[Step | None], memories: Memories, lookahead: Lookahead) -> None:
    """Bare commits of a batched run that follow each other in the stream, each writing the
    place after the previous one (the down projection's tiles into the hidden row),
    become one copy of their products, which lie one after another too."""
    batch = lookahead.batch
    assert batch is not None
    k = 1  # the first matmul's step starts the batch
    while k < len(group):
        end = k
        while end < len(group) and steps[group[end]] is not None and _bare(lookahead.steps[end]):
            if end > k and (group[end] != group[end - 1] + 1 or not _follows(planned[group[end - 1]], planned[group[end]])):
                break
            end += 1
        if end - k > 1:
            first = _out(planned[group[k]])
            offset = int(batch.results[k].ctypes.data - batch.y.ctypes.data) // 4
            count = sum(batch.results[j].size for j in range(k, end))
            target = np.ndarray((count,), isa.DTYPE_OF_CODE[first.dtype], memories.of(first.space, first.index), planned[group[k]].addresses["out"])
            steps[group[k]] = partial(np.copyto, target, batch.y[offset : offset + count], casting="unsafe")
            for j in range(k + 1, end):
                steps[group[j]] = None
        k = max(end, k + 1)


def _bare(step: MatmulStep) -> bool:
    return step.alpha is None and step.bias32 is None and step.accumulate is None


def _follows(previous: Planned, entry: Planned) -> bool:
    """Whether `entry`'s row-major result starts where `previous`'s ends, in the same memory and dtype."""
    a, b = _out(previous), _out(entry)
    return (
        (a.space, a.index, a.dtype) == (b.space, b.index, b.dtype) and is_row_major(a) and is_row_major(b)
        and entry.addresses["out"] + b.box[0] == previous.addresses["out"] + a.box[1]
    )


ELEMENTWISE = frozenset({"act_mul", "add", "mul", "div", "act", "cast", "softcap"})
"""Vector ops whose every output element depends on the same element of each input only."""


def _out(entry: Planned) -> Operand:
    out = entry.instr.operand("out")
    assert out is not None
    return out


@dataclass(frozen=True)
class Fused:
    """A batched run and the elementwise op after every m of its matmuls, at once (`fuse_elementwise`)."""

    lookahead: Lookahead
    products: np.ndarray
    """`[n, m, numel]`: the batch's products, tile by tile."""
    staged: dict[str, np.ndarray]
    """The op's inputs over all tiles `[n, numel]`, in the buffers' dtype."""
    sources: dict[str, int]
    """Which of the m matmuls feeds each input."""
    op: Step
    kept: list[np.ndarray]
    """The m OCM buffers: the last products stay there."""

    def __call__(self) -> None:
        self.lookahead.start()
        self.apply()
        for j, buffer in enumerate(self.kept):
            np.copyto(buffer, self.products[-1, j].reshape(buffer.shape), casting="unsafe")

    def apply(self) -> None:
        """The op over the products, staged in the buffers' dtype."""
        for name, j in self.sources.items():
            cast_into(self.staged[name], self.products[:, j])
        self.op()


@dataclass(frozen=True)
class Forwarded:
    """A batched run whose products go straight to where their stores put them (`forward_stores`)."""

    lookahead: Lookahead
    destination: np.ndarray
    """Every product, in order (their stores' bytes)."""
    buffer: np.ndarray
    """The OCM tile each product passed through: the last one stays there."""

    def __call__(self) -> None:
        batch = self.lookahead.batch
        assert batch is not None
        self.lookahead.start()
        np.copyto(self.destination, batch.y, casting="unsafe")
        np.copyto(self.buffer, batch.results[-1].reshape(self.buffer.shape), casting="unsafe")


def analyse(program: Program) -> Analysis:
    """The analysis of `program` (see `Analysis`)."""
    if isa.dynamic_count(program.body) > MAX_STEPS:
        raise AxcError(f"the program issues more than {MAX_STEPS} instructions per call; too long to simulate")
    try:
        return _Analyser(program).run()
    except FAILURES as error:  # a record the checks let through but the analysis refuses
        raise AxcError(f"command stream cannot be executed ({type(error).__name__}: {error}); the file is corrupt, rebuild it") from None


def build_plan(
    program: Program,
    memories: Memories,
    inputs: Sequence[tuple[tuple[int, ...], np.dtype]],
    outputs: Sequence[tuple[tuple[int, ...], np.dtype]],
    workspace: Workspace,
    analysis: Analysis | None = None,
) -> Plan:
    """The plan of `program` over `memories` (whose I/O arrays match `inputs`/`outputs`);
    `analysis`: `analyse(program)` when the caller has it already."""
    analysis = analysis if analysis is not None else analyse(program)
    try:
        steps = bind(analysis, memories, workspace)
    except FAILURES as error:  # a record the checks let through but numpy refuses
        raise AxcError(f"command stream cannot be executed ({type(error).__name__}: {error}); the file is corrupt, rebuild it") from None
    with_none: list[Step | None] = list(steps)
    lookaheads = add_lookaheads(analysis, with_none, memories, workspace) if workspace.threads > 1 else []
    steps = fuse_steps([step for step in with_none if step is not None])
    staged_in = [np.ndarray(shape, dtype, buffer) for (shape, dtype), buffer in zip(inputs, memories.inputs)]
    staged_out = [np.ndarray(shape, dtype, buffer) for (shape, dtype), buffer in zip(outputs, memories.outputs)]
    counters = dataclasses.replace(analysis.counters, macs=dict(analysis.counters.macs))
    one_blas = bool(lookaheads) or any(isinstance(step, MatmulStep) and step.gemv is not None for step in steps)
    return Plan(steps, staged_in, staged_out, counters, analysis.instructions, lookaheads, one_blas)
