"""The axc NPU instruction set: opcodes, operands and programs (its binary form: `encoding`).

One table (`OPCODES`) defines every instruction: its mnemonic (the `ax650.*` / `ax620e.*`
op name and the `npu.*` op it comes from), opcode byte, engine, operand slots and
immediates. The dialects, the lowering, the `.axmodel` emitter and disassembler, the
simulator and the cost model all read this table; docs/axmodel-format.md documents it
field by field. This package sits below the dialects: the target dialects are generated
from it, and it imports nothing of axc but `errors`.

```python
program = Program(chip=0, cores=1, scratch_bytes=0, inputs=5, outputs=3, body=[...])
for instr, trips in walk(program.body): ...
```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import ml_dtypes
import numpy as np

from axc.errors import AxcError
from axc.kernels import ACTIVATIONS, RopeSpec

# --- constants ---------------------------------------------------------------------------

STREAM_MAGIC = b"AXCS"
PARAMS_MAGIC = b"AXCP"
STREAM_VERSION = 1
PARAMS_VERSION = 1
MAX_DEPTH = 4
"""Loop nesting the records can address (one per-iteration stride per level)."""
MAX_RANK = 4
MAX_OPERANDS = 6
IMM_SLOTS = 10
TOKENS = 64
"""Dependency tokens: an instruction signals at most one, waits on a 64-bit mask."""
NO_SIGNAL = 0xFF
MAX_IMM = 1 << 31
"""Integer immediates (trip counts, head counts, group sizes) lie in [0, 2**31)."""
MAX_DYNAMIC = 1 << 24
"""Instructions a program may issue per call (loops expanded); more means a corrupt count."""
CHIPS = ("AX650", "AX620E")
"""Chip family codes of the stream header."""

# Memory spaces of an operand.
NONE, OCM, PARAMS, SCRATCH, INPUT, OUTPUT = range(6)
SPACE_NAMES = {OCM: "ocm", PARAMS: "params", SCRATCH: "scratch", INPUT: "in", OUTPUT: "out"}
DDR_SPACES = (PARAMS, SCRATCH, INPUT, OUTPUT)

# Queues of one core: four DMA channels, the matrix and the vector engine, and the
# convolution units (CONV: float matmuls only, where the chip lets them take matrix work,
# with FLOAT_MATMUL_USE_CONV_EU); loops run on the command processor (queue CONTROL).
DMA_QUEUES = (0, 1, 2, 3)
MATRIX_QUEUE = 4
VECTOR_QUEUE = 5
CONV_QUEUE = 6
CONTROL_QUEUE = 7
QUEUE_NAMES = {0: "dma0", 1: "dma1", 2: "dma2", 3: "dma3", MATRIX_QUEUE: "mx", VECTOR_QUEUE: "vx", CONV_QUEUE: "cv"}

# Element types: code, MLIR spelling, numpy dtype.
DTYPES: tuple[tuple[int, str, np.dtype], ...] = tuple(
    (code, name, np.dtype(dtype))
    for code, name, dtype in (
        (1, "ui8", np.uint8),
        (2, "i8", np.int8),
        (3, "ui16", np.uint16),
        (4, "i16", np.int16),
        (5, "ui32", np.uint32),
        (6, "i32", np.int32),
        (7, "ui64", np.uint64),
        (8, "i64", np.int64),
        (9, "f16", np.float16),
        (10, "bf16", ml_dtypes.bfloat16),
        (11, "f32", np.float32),
        (12, "f64", np.float64),
        (13, "f8E4M3FN", ml_dtypes.float8_e4m3fn),
        (14, "f8E5M2", ml_dtypes.float8_e5m2),
    )
)
DTYPE_OF_CODE: dict[int, np.dtype] = {code: dtype for code, _, dtype in DTYPES}
CODE_OF_DTYPE: dict[np.dtype, int] = {dtype: code for code, _, dtype in DTYPES}
NAME_OF_CODE: dict[int, str] = {code: name for code, name, _ in DTYPES}
FLOAT_CODES = frozenset(code for code, _, dtype in DTYPES if dtype.kind in "fV")


def dtype_code(dtype: np.dtype) -> int:
    code = CODE_OF_DTYPE.get(np.dtype(dtype))
    if code is None:
        raise AxcError(f"element type {dtype} has no NPU encoding")
    return code


# --- the opcode table --------------------------------------------------------------------


@dataclass(frozen=True)
class Imm:
    """An immediate: `int`, `float`, `enum` (index into `choices`) or `flag` (a bit of the
    record's flags byte)."""

    name: str
    kind: str
    default: int | float | str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpInfo:
    mnemonic: str
    code: int
    engine: str  # "dma", "matrix", "vector" or "control"
    operands: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()
    outputs: frozenset[str] = frozenset()
    imms: tuple[Imm, ...] = ()

    @property
    def values(self) -> tuple[Imm, ...]:
        """Immediates stored in the 8 value slots (flags live in the flags byte)."""
        return tuple(i for i in self.imms if i.kind != "flag")

    @property
    def flags(self) -> tuple[Imm, ...]:
        return tuple(i for i in self.imms if i.kind == "flag")


WEIGHT_FORMATS = ("float", "s8", "s4", "fp8_e4m3", "fp8_e5m2")
"""How `matmul` (and `npu.matmul`) reads its right-hand tile: plain floats, or quantized storage."""
ACT_KINDS = ACTIVATIONS


def _rope_imms() -> tuple[Imm, ...]:
    """`num_heads`, then one immediate per `kernels.RopeSpec` field (the one RoPE definition):
    a `bool` field is a flag bit, a field with choices an enum."""
    imms = [Imm("num_heads", "int")]
    for f in dataclasses.fields(RopeSpec):
        default = None if f.default is dataclasses.MISSING else f.default
        choices = tuple(f.metadata.get("choices", ()))
        kind = "enum" if choices else {"bool": "flag"}.get(str(f.type), str(f.type))
        assert kind in ("enum", "flag", "int", "float"), f"RopeSpec.{f.name} needs choices to be an immediate"
        imms.append(Imm(f.name, kind, None if kind == "flag" else default, choices))
    return tuple(imms)


def _op(mnemonic: str, code: int, engine: str, ins: str = "", opts: str = "", outs: str = "", imms: Sequence[Imm] = ()) -> OpInfo:
    names = tuple(ins.split()) + tuple(opts.split()) + tuple(outs.split())
    return OpInfo(mnemonic, code, engine, names, frozenset(opts.split()), frozenset(outs.split()), tuple(imms))


_EPS = Imm("eps", "float")
OPCODES: tuple[OpInfo, ...] = (
    _op("loop", 0x01, "control", imms=(Imm("trips", "int"), Imm("body", "int"))),
    _op("end", 0x02, "control"),
    _op("dma_load", 0x10, "dma", "src", outs="dst"),
    _op("dma_store", 0x11, "dma", "src", outs="dst"),
    _op(
        "matmul", 0x20, "matrix", "lhs rhs", "scales zeros bias", "out",
        (
            Imm("format", "enum", "float", WEIGHT_FORMATS),
            Imm("group", "int", 0),
            Imm("alpha", "float", 1.0),
            Imm("transpose_b", "flag"),
            Imm("accumulate", "flag"),
        ),
    ),
    _op("fill", 0x30, "vector", outs="out", imms=(Imm("value", "float"),)),
    _op("cast", 0x31, "vector", "input", outs="out"),
    _op("act", 0x32, "vector", "input", outs="out", imms=(Imm("kind", "enum", None, ACT_KINDS),)),
    _op("add", 0x33, "vector", "lhs rhs", outs="out"),
    _op("mul", 0x34, "vector", "lhs rhs", outs="out"),
    _op("div", 0x35, "vector", "lhs rhs", outs="out"),
    _op("act_mul", 0x36, "vector", "gate up", outs="out", imms=(Imm("kind", "enum", None, ACT_KINDS),)),
    _op("rms_norm", 0x37, "vector", "input weight", outs="out", imms=(_EPS,)),
    _op("add_rms_norm", 0x38, "vector", "lhs rhs weight", outs="sum out", imms=(_EPS,)),
    _op("layer_norm", 0x39, "vector", "input weight", "bias", "out", (_EPS,)),
    _op(
        "rope", 0x3A, "vector", "input positions", "ext_factors", "out",
        imms=_rope_imms(),
    ),
    _op("online_softmax", 0x3B, "vector", "scores", outs="probs max sum corr"),
    _op("gather", 0x3C, "vector", "input indices", outs="out"),
    _op("topk", 0x3D, "vector", "input", outs="values indices", imms=(Imm("k", "int"),)),
    _op("head_norm", 0x48, "vector", "input weight", outs="out", imms=(_EPS, Imm("head_dim", "int"))),
    _op("softcap", 0x3E, "vector", "input", outs="out", imms=(Imm("cap", "float"),)),
    _op("iota", 0x3F, "vector", outs="out"),
    _op("window_mask", 0x40, "vector", "scores query_positions key_positions", outs="out", imms=(Imm("window", "int"),)),
)
OP_BY_NAME: dict[str, OpInfo] = {op.mnemonic: op for op in OPCODES}
OP_BY_CODE: dict[int, OpInfo] = {op.code: op for op in OPCODES}
LOOP, END = OP_BY_NAME["loop"], OP_BY_NAME["end"]
ENGINE_QUEUES: dict[str, tuple[int, ...]] = {
    "dma": DMA_QUEUES,
    "matrix": (MATRIX_QUEUE, CONV_QUEUE),
    "vector": (VECTOR_QUEUE,),
    "control": (CONTROL_QUEUE,),
}
assert all(len(op.values) <= IMM_SLOTS and len(op.operands) <= MAX_OPERANDS and len(op.flags) <= 8 for op in OPCODES)


# --- programs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Operand:
    """A strided box in one memory space; every address and stride is in bytes.

    Element `i` (a multi-index) of iteration `ivs` (the counters of the enclosing loops,
    outermost first) lives at `base + Σ ivs[d] * loop_strides[d] + Σ i[r] * strides[r]`.
    """

    space: int
    index: int
    dtype: int
    base: int
    sizes: tuple[int, ...]
    strides: tuple[int, ...]
    loop_strides: tuple[int, ...] = (0,) * MAX_DEPTH

    @property
    def itemsize(self) -> int:
        return DTYPE_OF_CODE[self.dtype].itemsize

    @property
    def numel(self) -> int:
        return math.prod(self.sizes)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    def address(self, ivs: Sequence[int]) -> int:
        return self.base + sum(i * s for i, s in zip(ivs, self.loop_strides))

    @cached_property
    def box(self) -> tuple[int, int]:
        """Bytes `[low, high)` of one iteration, relative to the address."""
        low = high = 0
        for size, stride in zip(self.sizes, self.strides):
            span = (size - 1) * stride
            if span < 0:
                low += span
            else:
                high += span
        return low, high + DTYPE_OF_CODE[self.dtype].itemsize

    def extent(self, trips: Sequence[int]) -> tuple[int, int]:
        """Bytes `[low, high)` the operand touches over all iterations of loops with `trips`."""
        low, high = self.box
        low += self.base
        high += self.base
        for count, stride in zip(trips, self.loop_strides):
            if stride:
                span = (count - 1) * stride
                if span < 0:
                    low += span
                else:
                    high += span
        return low, high


@dataclass(frozen=True)
class Instr:
    """One engine instruction. `values` follow `op.imms` (flags as bools); `operands`
    follow `op.operands` (None for an absent optional operand). It starts when every
    earlier-dispatched instruction signalling a token in `wait` has completed."""

    op: OpInfo
    core: int
    queue: int
    operands: tuple[Operand | None, ...]
    values: tuple[int | float | str | bool, ...]
    wait: int = 0
    signal: int | None = None

    def value(self, name: str) -> int | float | str | bool:
        for imm, value in zip(self.op.imms, self.values):
            if imm.name == name:
                return value
        raise KeyError(name)

    def operand(self, name: str) -> Operand | None:
        return self.operands[self.op.operands.index(name)]

    def named(self) -> Iterator[tuple[str, Operand]]:
        for name, operand in zip(self.op.operands, self.operands):
            if operand is not None:
                yield name, operand


@dataclass
class Loop:
    """Repeat `body` `trips` times; the counter is `l<depth>` in the body's addresses."""

    trips: int
    body: list[Node] = field(default_factory=list)


Node = Instr | Loop


@dataclass
class Program:
    """The command stream of one shape group."""

    chip: int
    cores: int
    scratch_bytes: int
    inputs: int
    outputs: int
    body: list[Node] = field(default_factory=list)


def walk(body: Sequence[Node], trips: tuple[int, ...] = ()) -> Iterator[tuple[Instr, tuple[int, ...]]]:
    """Every instruction with the trip counts of its enclosing loops (outermost first)."""
    for node in body:
        if isinstance(node, Loop):
            yield from walk(node.body, (*trips, node.trips))
        else:
            yield node, trips


def dynamic_count(body: Sequence[Node]) -> int:
    """Instructions issued by one run of `body` (loops expanded)."""
    return sum(dynamic_count(n.body) * n.trips if isinstance(n, Loop) else 1 for n in body)


def align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def ocm_bytes(program: Program) -> int:
    """One past the highest OCM byte the program touches."""
    end = 0
    for instr, trips in walk(program.body):
        for _, operand in instr.named():
            if operand.space == OCM:
                end = max(end, operand.extent(trips)[1])
    return end
