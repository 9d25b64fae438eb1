"""An execution plan: a decoded command stream turned into a flat list of numpy calls.

Built once per shape group and reused. Loops are expanded and every operand becomes a
numpy view into the memories (OCM, the parameter blob, DDR scratch, the I/O buffers) at
plan time, so running a group is a loop over pre-bound calls of `axc.npu_semantics` (the
semantics the npu interpreter uses too).

Constant weight tiles are folded at plan time: a pass over the steps tracks which OCM
bytes hold parameter bytes (copied there by DMA from the blob and not overwritten since).
A matmul whose weight tile, scales and zeros are such bytes gets the tile dequantized once
(`npu_semantics.dequantize_tile`, cached by content per session) and runs
`npu_semantics.product` on it; a parameter DMA whose bytes nothing else reads before they
are overwritten is then dead and dropped. Results are unchanged; the counters still
count every instruction.

```python
plan = build_plan(program, memories, specs_in, specs_out, weights)
outputs = plan.run([k_cache, v_cache, indices, hidden, mask])
```
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from axc import kernels
from axc import npu_semantics as sem
from axc import isa
from axc.isa import Instr, Loop, Node, Operand, Program
from axc.errors import AxcError

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


@dataclass
class WeightCache:
    """Dequantized fp32 weight tiles by content, shared by the plans of one session."""

    limit: int = 16 << 30
    tiles: dict[tuple[object, ...], np.ndarray] = field(default_factory=dict)
    nbytes: int = 0

    def get(self, key: tuple[object, ...], make: Callable[[], np.ndarray]) -> np.ndarray | None:
        tile = self.tiles.get(key)
        if tile is None:
            if self.nbytes >= self.limit:
                return None
            tile = self.tiles[key] = make()
            self.nbytes += tile.nbytes
        return tile


def view(memory: np.ndarray, operand: Operand, address: int) -> np.ndarray:
    """The typed strided view of `operand` at `address`."""
    return np.ndarray(operand.sizes, isa.DTYPE_OF_CODE[operand.dtype], memory, address, operand.strides)


def byte_view(memory: np.ndarray, operand: Operand, address: int) -> np.ndarray:
    """The bytes of `operand` at `address`, in an array with one element per byte."""
    scale = memory.itemsize
    return np.ndarray(
        (*operand.sizes, operand.itemsize),
        memory.dtype,
        memory,
        address * scale,
        (*(s * scale for s in operand.strides), scale),
    )


def span(operand: Operand, address: int) -> tuple[int, int]:
    high = address + sum((size - 1) * stride for size, stride in zip(operand.sizes, operand.strides))
    return address, high + operand.itemsize


def expand(body: Sequence[Node], ivs: tuple[int, ...] = ()) -> Iterator[tuple[Instr, tuple[int, ...]]]:
    for node in body:
        if isinstance(node, Loop):
            for i in range(node.trips):
                yield from expand(node.body, (*ivs, i))
        else:
            yield node, ivs


def rope_spec(instr: Instr) -> kernels.RopeSpec:
    v = {imm.name: value for imm, value in zip(instr.op.imms, instr.values)}
    return kernels.RopeSpec(
        head_dim=int(v["head_dim"]),
        rotary_dim=int(v["rotary_dim"]),
        theta=float(v["theta"]),
        scaling=str(v["scaling"]),
        factor=float(v["factor"]),
        low_freq_factor=float(v["low_freq_factor"]),
        high_freq_factor=float(v["high_freq_factor"]),
        original_max_positions=int(v["original_max_positions"]),
    )


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
    "rope": lambda v, i: partial(sem.rope, v["out"], v["input"], v["positions"], int(i.value("num_heads")), rope_spec(i)),
    "online_softmax": lambda v, i: partial(sem.online_softmax, v["probs"], v["max"], v["sum"], v["corr"], v["scores"]),
    "gather": lambda v, i: partial(sem.gather, v["out"], v["input"], v["indices"]),
    "topk": lambda v, i: partial(sem.topk, v["values"], v["indices"], v["input"], int(i.value("k"))),
}
assert set(VECTOR) == {op.mnemonic for op in isa.OPCODES if op.engine == "vector"}


def digest(array: np.ndarray | None) -> bytes:
    if array is None:
        return b""
    return hashlib.blake2b(np.ascontiguousarray(array).view(np.uint8), digest_size=16).digest()


@dataclass
class Plan:
    """Pre-bound steps of one group; `run` stages inputs, runs them, and reads outputs."""

    steps: list[Step]
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    counters: sem.Counters
    instructions: int

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        for staged, value in zip(self.inputs, inputs, strict=True):
            value = np.asarray(value)
            if staged.dtype.kind in "fV" and value.dtype.kind in "fV" and value.dtype != staged.dtype:
                value = value.astype(np.float32, copy=False)
            np.copyto(staged, value.reshape(staged.shape), casting="unsafe")
        try:
            for step in self.steps:
                step()
        except FAILURES as error:
            raise AxcError(f"command stream cannot be executed ({type(error).__name__}: {error}); the file is corrupt, rebuild it") from None
        return [out.astype(np.float32) if out.dtype.kind in "fV" else out.copy() for out in self.outputs]


class _Builder:
    """Expands a program into steps while tracking which OCM bytes hold parameter bytes."""

    def __init__(self, program: Program, memories: Memories, weights: WeightCache):
        self.program = program
        self.memories = memories
        self.weights = weights
        size = memories.ocm.size
        self.known = np.zeros(size, bool)
        self.shadow = np.zeros(size, np.uint8)
        self.writer = np.full(size, -1, np.int32)
        self.needed: set[int] = set()
        self.param_loads: set[int] = set()
        self.steps: list[Step] = []
        self.counters = sem.Counters(calls=1)

    def read(self, operand: Operand, address: int) -> None:
        """A non-folded read of OCM: the parameter DMAs that wrote those bytes must run."""
        if operand.space != isa.OCM:
            return
        low, high = span(operand, address)
        writers = self.writer[low:high]
        writers = writers[writers >= 0]
        if writers.size:
            self.needed.update(np.unique(writers).tolist())

    def clobber(self, operand: Operand, address: int) -> None:
        if operand.space == isa.OCM:
            byte_view(self.known, operand, address)[...] = False
            byte_view(self.writer, operand, address)[...] = -1

    def is_known(self, operand: Operand | None, address: int) -> bool:
        return operand is None or (operand.space == isa.OCM and bool(byte_view(self.known, operand, address).all()))

    def build(self) -> list[Step]:
        memories = self.memories
        for instr, ivs in expand(self.program.body):
            addresses = {name: operand.address(ivs) for name, operand in instr.named()}
            views = {name: view(memories.of(o.space, o.index), o, addresses[name]) for name, o in instr.named()}
            mnemonic = instr.op.mnemonic
            index = len(self.steps)
            if instr.op.engine == "dma":
                self.dma(instr, views, addresses, index)
            elif mnemonic == "matmul":
                self.matmul(instr, views, addresses)
            else:
                for name, operand in instr.named():
                    if name not in instr.op.outputs:
                        self.read(operand, addresses[name])
                for name in instr.op.outputs:
                    operand = instr.operand(name)
                    if operand is not None:
                        self.clobber(operand, addresses[name])
                self.steps.append(VECTOR[mnemonic](views, instr))
                self.counters.vector_ops += max(v.size for v in views.values())
        return [step for index, step in enumerate(self.steps) if index not in self.param_loads or index in self.needed]

    def dma(self, instr: Instr, views: dict[str, np.ndarray], addresses: dict[str, int], index: int) -> None:
        src, dst = instr.operands
        assert src is not None and dst is not None
        self.counters.dma_ops += 1
        if instr.op.mnemonic == "dma_load":
            self.counters.ddr_read += src.nbytes
        else:
            self.counters.ddr_write += src.nbytes
        self.read(src, addresses["src"])
        self.clobber(dst, addresses["dst"])
        if src.space == isa.PARAMS and dst.space == isa.OCM:
            shadow = view(self.shadow, dst, addresses["dst"])
            shadow[...] = views["src"].reshape(shadow.shape)
            byte_view(self.known, dst, addresses["dst"])[...] = True
            byte_view(self.writer, dst, addresses["dst"])[...] = index
            self.param_loads.add(index)
        self.steps.append(_dma(views["dst"], views["src"]))

    def matmul(self, instr: Instr, views: dict[str, np.ndarray], addresses: dict[str, int]) -> None:
        fmt = str(instr.value("format"))
        group = int(instr.value("group"))
        options = dict(
            bias=views.get("bias"),
            alpha=float(instr.value("alpha")),
            transpose_b=bool(instr.value("transpose_b")),
            accumulate=bool(instr.value("accumulate")),
        )
        out, lhs = views["out"], views["lhs"]
        self.counters.add_macs(fmt, int(out.size * lhs.shape[-1]))
        for name in ("lhs", "bias"):
            operand = instr.operand(name)
            if operand is not None:
                self.read(operand, addresses[name])
        if options["accumulate"]:
            self.read(instr.operands[-1], addresses["out"])  # type: ignore[arg-type]
        weights = [(name, instr.operand(name)) for name in ("rhs", "scales", "zeros")]
        tile = None
        if all(self.is_known(o, addresses.get(name, 0)) for name, o in weights):
            shadows = {name: view(self.shadow, o, addresses[name]).copy() for name, o in weights if o is not None}
            key = (fmt, group, shadows["rhs"].dtype.str, shadows["rhs"].shape, *(digest(shadows.get(n)) for n in ("rhs", "scales", "zeros")))
            tile = self.weights.get(
                key,
                lambda: sem.load(shadows["rhs"]).copy() if fmt == "float"
                else sem.dequantize_tile(shadows["rhs"], fmt, shadows.get("scales"), shadows.get("zeros"), group),
            )
        if tile is None:
            for name, operand in weights:
                if operand is not None:
                    self.read(operand, addresses[name])
            self.steps.append(
                partial(sem.matmul, out, lhs, views["rhs"], fmt=fmt, scales=views.get("scales"), zeros=views.get("zeros"), group=group, **options)
            )
        else:
            self.steps.append(partial(sem.product, out, lhs, tile, **options))
        self.clobber(instr.operands[-1], addresses["out"])  # type: ignore[arg-type]


def build_plan(
    program: Program,
    memories: Memories,
    inputs: Sequence[tuple[tuple[int, ...], np.dtype]],
    outputs: Sequence[tuple[tuple[int, ...], np.dtype]],
    weights: WeightCache,
) -> Plan:
    """The plan of `program` over `memories` (whose I/O arrays match `inputs`/`outputs`)."""
    if isa.dynamic_count(program.body) > MAX_STEPS:
        raise AxcError(f"the program issues more than {MAX_STEPS} instructions per call; too long to simulate")
    builder = _Builder(program, memories, weights)
    try:
        steps = builder.build()
    except FAILURES as error:  # a record the checks let through but numpy refuses
        raise AxcError(f"command stream cannot be executed ({type(error).__name__}: {error}); the file is corrupt, rebuild it") from None
    staged_in = [np.ndarray(shape, dtype, buffer) for (shape, dtype), buffer in zip(inputs, memories.inputs)]
    staged_out = [np.ndarray(shape, dtype, buffer) for (shape, dtype), buffer in zip(outputs, memories.outputs)]
    count = sum(1 for _ in isa.walk(program.body))
    return Plan(steps, staged_in, staged_out, builder.counters, count)
