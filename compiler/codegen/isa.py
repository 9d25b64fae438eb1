"""The axc NPU instruction set: opcodes, operands, and their binary encoding.

One table (`OPCODES`) defines every instruction: its mnemonic (the `ax650.*` / `ax620e.*`
op name and the `npu.*` op it comes from), opcode byte, engine, operand slots and
immediates. The dialects, the lowering, the `.axmodel` emitter and disassembler, the
simulator and the cost model all read this table; docs/axmodel-format.md documents it
field by field.

A command stream (`subgraph_npu_<k>_b1_neu`) is a 64-byte header followed by fixed-size
432-byte little-endian records. A parameter blob (`npu_params`) is a 40-byte header, a
segment table, a name pool and the aligned data area. Both are versioned.

```python
program = Program(chip=0, cores=1, scratch_bytes=0, inputs=5, outputs=3, body=[...])
data = encode_program(program)
assert decode_program(data) == program
```
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import ml_dtypes
import numpy as np

from axc.errors import AxcError

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

# Queues of one core: four DMA channels, the matrix and the vector engine; loops run on
# the command processor (queue CONTROL).
DMA_QUEUES = (0, 1, 2, 3)
MATRIX_QUEUE = 4
VECTOR_QUEUE = 5
CONTROL_QUEUE = 7
QUEUE_NAMES = {0: "dma0", 1: "dma1", 2: "dma2", 3: "dma3", MATRIX_QUEUE: "mx", VECTOR_QUEUE: "vx"}

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
ACT_KINDS = ("silu", "gelu", "gelu_tanh", "relu")
ROPE_SCALINGS = ("default", "linear", "llama3")


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
        "rope", 0x3A, "vector", "input positions", outs="out",
        imms=(
            Imm("num_heads", "int"),
            Imm("head_dim", "int"),
            Imm("rotary_dim", "int"),
            Imm("theta", "float"),
            Imm("scaling", "enum", "default", ROPE_SCALINGS),
            Imm("factor", "float", 1.0),
            Imm("low_freq_factor", "float", 1.0),
            Imm("high_freq_factor", "float", 4.0),
            Imm("original_max_positions", "int", 0),
        ),
    ),
    _op("online_softmax", 0x3B, "vector", "scores", outs="probs max sum corr"),
    _op("gather", 0x3C, "vector", "input indices", outs="out"),
    _op("topk", 0x3D, "vector", "input", outs="values indices", imms=(Imm("k", "int"),)),
)
OP_BY_NAME: dict[str, OpInfo] = {op.mnemonic: op for op in OPCODES}
OP_BY_CODE: dict[int, OpInfo] = {op.code: op for op in OPCODES}
LOOP, END = OP_BY_NAME["loop"], OP_BY_NAME["end"]
ENGINE_QUEUES: dict[str, tuple[int, ...]] = {
    "dma": DMA_QUEUES,
    "matrix": (MATRIX_QUEUE,),
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


def ocm_bytes(program: Program) -> int:
    """One past the highest OCM byte the program touches."""
    end = 0
    for instr, trips in walk(program.body):
        for _, operand in instr.named():
            if operand.space == OCM:
                end = max(end, operand.extent(trips)[1])
    return end


# --- encoding ----------------------------------------------------------------------------

HEADER = struct.Struct("<4sHHHBBIIIBBBBB35x")
RECORD_HEAD = struct.Struct("<BBBBBBHQ")
OPERAND = struct.Struct("<BBBBI4I4i4i")
RECORD_SIZE = RECORD_HEAD.size + 8 * IMM_SLOTS + OPERAND.size * MAX_OPERANDS
assert HEADER.size == 64 and RECORD_SIZE == 432


def _record_struct(op: OpInfo) -> struct.Struct:
    values = "".join("d" if imm.kind == "float" else "q" for imm in op.values)
    return struct.Struct("<BBBBBBHQ" + values + "q" * (IMM_SLOTS - len(op.values)) + "BBBBI4I4i4i" * MAX_OPERANDS)


_RECORDS = {op.code: _record_struct(op) for op in OPCODES}
OPERAND_FIELDS = 5 + MAX_RANK * 2 + MAX_DEPTH
_EMPTY_OPERAND = (0,) * OPERAND_FIELDS


def _pad(values: Sequence[int], length: int) -> tuple[int, ...]:
    return (*values, *(0,) * (length - len(values)))


def _encode_instr(instr: Instr, out: list[bytes]) -> None:
    op = instr.op
    flags = 0
    values: list[int | float] = []
    for imm, value in zip(op.imms, instr.values):
        if imm.kind == "flag":
            flags |= int(bool(value)) << op.flags.index(imm)
        elif imm.kind == "enum":
            values.append(imm.choices.index(str(value)))
        elif imm.kind == "float":
            values.append(float(value))
        else:
            values.append(int(value))
    fields: list[int | float] = [
        op.code, instr.core, instr.queue, flags,
        NO_SIGNAL if instr.signal is None else instr.signal, len(op.operands), 0, instr.wait,
        *values, *(0,) * (IMM_SLOTS - len(values)),
    ]
    for slot in range(MAX_OPERANDS):
        operand = instr.operands[slot] if slot < len(instr.operands) else None
        if operand is None:
            fields.extend(_EMPTY_OPERAND)
            continue
        rank = len(operand.sizes)
        fields.extend(
            (operand.space, operand.index, operand.dtype, rank, operand.base,
             *_pad(operand.sizes, MAX_RANK), *_pad(operand.strides, MAX_RANK), *_pad(operand.loop_strides, MAX_DEPTH))
        )
    out.append(_RECORDS[op.code].pack(*fields))


def _control(op: OpInfo, *values: int) -> bytes:
    """A `loop` or `end` record: the command processor's queue, no operands."""
    padded = (*values, *(0,) * (IMM_SLOTS - len(values)))
    return _RECORDS[op.code].pack(op.code, 0, CONTROL_QUEUE, 0, NO_SIGNAL, 0, 0, 0, *padded, *_EMPTY_OPERAND * MAX_OPERANDS)


def _encode_body(body: Sequence[Node], out: list[bytes]) -> int:
    count = 0
    for node in body:
        if isinstance(node, Loop):
            slot = len(out)
            out.append(b"")
            inner = _encode_body(node.body, out)
            out[slot] = _control(LOOP, node.trips, inner)
            out.append(_control(END))
            count += inner + 2
        else:
            _encode_instr(node, out)
            count += 1
    return count


def encode_program(program: Program) -> bytes:
    records: list[bytes] = []
    _encode_body(program.body, records)
    header = HEADER.pack(
        STREAM_MAGIC, STREAM_VERSION, HEADER.size, RECORD_SIZE, program.chip, program.cores, len(records),
        ocm_bytes(program), program.scratch_bytes, TOKENS, MAX_DEPTH, MAX_OPERANDS, program.inputs, program.outputs,
    )
    return header + b"".join(records)


# --- decoding ----------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, where: str, cores: int):
        self.data, self.where, self.cores = data, where, cores

    def fail(self, index: int | None, what: str) -> AxcError:
        at = f" record {index}:" if index is not None else ""
        return AxcError(f"{self.where}:{at} {what}; the command stream is corrupt, rebuild the .axmodel")


def decode_program(data: bytes, where: str = "command stream") -> Program:
    """The program in `data`, after checking every field (one AxcError line on a defect)."""
    if len(data) < HEADER.size:
        raise AxcError(f"{where}: {len(data)} bytes, shorter than the {HEADER.size}-byte header (truncated); rebuild the .axmodel")
    (magic, version, header_size, record_size, chip, cores, count, ocm_end, scratch, tokens, depth, operands, inputs, outputs) = HEADER.unpack_from(data)
    if magic != STREAM_MAGIC:
        raise AxcError(f"{where}: wrong magic {magic!r} (expected {STREAM_MAGIC!r}); not an axc command stream")
    if version != STREAM_VERSION:
        raise AxcError(f"{where}: command stream version {version}, this axc reads {STREAM_VERSION}; rebuild the .axmodel")
    if (header_size, record_size, tokens, depth, operands) != (HEADER.size, RECORD_SIZE, TOKENS, MAX_DEPTH, MAX_OPERANDS):
        raise AxcError(
            f"{where}: header geometry {header_size}/{record_size}/{tokens}/{depth}/{operands} "
            "is not this version's; the command stream is corrupt"
        )
    if data[HEADER.size - 35 : HEADER.size] != bytes(35):
        raise AxcError(f"{where}: reserved header bytes are not zero; the command stream is corrupt")
    if chip >= len(CHIPS) or not 1 <= cores <= 8:
        raise AxcError(f"{where}: chip code {chip} / {cores} cores out of range; the command stream is corrupt")
    if len(data) != HEADER.size + count * RECORD_SIZE:
        raise AxcError(
            f"{where}: {len(data)} bytes but the header announces {count} records "
            f"({HEADER.size + count * RECORD_SIZE} bytes; truncated or corrupt); rebuild the .axmodel"
        )
    reader = _Reader(data, where, cores)
    body, end = _decode_body(reader, HEADER.size, count, 0, None)
    if end != count:
        raise reader.fail(end, "END without a LOOP")
    program = Program(chip, cores, scratch, inputs, outputs, body)
    if dynamic_count(body) > MAX_DYNAMIC:
        raise AxcError(f"{where}: the loops issue more than {MAX_DYNAMIC} instructions per call; the command stream is corrupt")
    if ocm_bytes(program) != ocm_end:
        raise AxcError(
            f"{where}: header says the program uses {ocm_end} OCM bytes, its records use {ocm_bytes(program)}; "
            "the command stream is corrupt"
        )
    return program


def _decode_body(reader: _Reader, start: int, count: int, depth: int, stop: int | None) -> tuple[list[Node], int]:
    """Records `[index, stop)` (or to `count`) as nodes; returns them and the next index."""
    body: list[Node] = []
    index = (start - HEADER.size) // RECORD_SIZE
    limit = count if stop is None else stop
    while index < limit:
        offset = HEADER.size + index * RECORD_SIZE
        code = reader.data[offset]
        op = OP_BY_CODE.get(code)
        if op is None:
            raise reader.fail(index, f"unknown opcode 0x{code:02x}")
        fields = _RECORDS[code].unpack_from(reader.data, offset)
        if op is END:
            if stop is None:
                return body, index
            raise reader.fail(index, "END before the LOOP's announced body")
        if op is LOOP:
            _check_control(reader, index, fields)
            trips, inner = fields[8], fields[9]
            if depth >= MAX_DEPTH:
                raise reader.fail(index, f"loops nested deeper than {MAX_DEPTH}")
            if not 1 <= trips < MAX_IMM or inner < 0 or index + 1 + inner >= count:
                raise reader.fail(index, f"LOOP of {trips} trips over {inner} records runs past the stream")
            loop_body, after = _decode_body(reader, HEADER.size + (index + 1) * RECORD_SIZE, count, depth + 1, index + 1 + inner)
            end = HEADER.size + after * RECORD_SIZE
            if after >= count or reader.data[end] != END.code:
                raise reader.fail(after, "LOOP body not closed by END")
            _check_control(reader, after, _RECORDS[END.code].unpack_from(reader.data, end))
            body.append(Loop(trips, loop_body))
            index = after + 1
            continue
        body.append(_decode_instr(reader, index, op, fields, depth))
        index += 1
    if stop is not None and index != stop:
        raise reader.fail(index, "LOOP body overruns its announced length")
    return body, index


def _check_control(reader: _Reader, index: int, fields: tuple) -> None:
    core, queue, flags, signal, nops, reserved, wait = fields[1:8]
    op = OP_BY_CODE[fields[0]]
    values = fields[8 : 8 + IMM_SLOTS]
    head = (core, queue, flags, signal, nops, reserved, wait)
    if head != (0, CONTROL_QUEUE, 0, NO_SIGNAL, 0, 0, 0) or any(values[len(op.values) :]) or any(fields[8 + IMM_SLOTS :]):
        raise reader.fail(index, f"malformed {op.mnemonic.upper()} record")


def _decode_instr(reader: _Reader, index: int, op: OpInfo, fields: tuple, depth: int) -> Instr:
    core, queue, flags, signal, nops, reserved, wait = fields[1:8]
    if queue not in ENGINE_QUEUES[op.engine]:
        raise reader.fail(index, f"{op.mnemonic} on queue {queue}, which is not a {op.engine} queue")
    if core >= reader.cores:
        raise reader.fail(index, f"{op.mnemonic} on core {core} of a {reader.cores}-core program")
    if signal != NO_SIGNAL and signal >= TOKENS:
        raise reader.fail(index, f"signal token {signal} out of range (0..{TOKENS - 1})")
    if nops != len(op.operands) or reserved:
        raise reader.fail(index, f"{op.mnemonic} with {nops} operand slots (expected {len(op.operands)})")
    if flags >> len(op.flags):
        raise reader.fail(index, f"{op.mnemonic} sets undefined flag bits 0x{flags:02x}")
    raw = fields[8 : 8 + IMM_SLOTS]
    if any(v != 0 for v in raw[len(op.values) :]):
        raise reader.fail(index, f"{op.mnemonic} sets unused immediate slots")
    values: list[int | float | str | bool] = []
    slot = 0
    for imm in op.imms:
        if imm.kind == "flag":
            values.append(bool(flags >> op.flags.index(imm) & 1))
            continue
        value = raw[slot]
        slot += 1
        if imm.kind == "enum":
            if not 0 <= value < len(imm.choices):
                raise reader.fail(index, f"{op.mnemonic} {imm.name} code {value} out of range")
            values.append(imm.choices[value])
        elif imm.kind == "float":
            if not math.isfinite(value):
                raise reader.fail(index, f"{op.mnemonic} {imm.name} is not finite")
            values.append(value)
        else:
            if not 0 <= value < MAX_IMM:
                raise reader.fail(index, f"{op.mnemonic} {imm.name} = {value} out of range")
            values.append(value)
    operands: list[Operand | None] = []
    raw_ops = fields[8 + IMM_SLOTS :]
    for position in range(MAX_OPERANDS):
        chunk = raw_ops[position * OPERAND_FIELDS : (position + 1) * OPERAND_FIELDS]
        if position >= len(op.operands):
            if any(chunk):
                raise reader.fail(index, f"{op.mnemonic} uses operand slot {position}, beyond its {len(op.operands)}")
            continue
        name = op.operands[position]
        space, number, dtype, rank, base = chunk[:5]
        sizes, strides, loops = chunk[5:9], chunk[9:13], chunk[13:17]
        if space == NONE:
            if any(chunk) or name not in op.optional:
                raise reader.fail(index, f"{op.mnemonic} lacks its {name} operand")
            operands.append(None)
            continue
        if space not in SPACE_NAMES or (space in (OCM, PARAMS, SCRATCH) and number):
            raise reader.fail(index, f"{op.mnemonic} {name} in unknown memory space {space}/{number}")
        if dtype not in DTYPE_OF_CODE:
            raise reader.fail(index, f"{op.mnemonic} {name} has unknown element type code {dtype}")
        if not 1 <= rank <= MAX_RANK or any(s < 1 for s in sizes[:rank]) or any(sizes[rank:]) or any(strides[rank:]):
            raise reader.fail(index, f"{op.mnemonic} {name} has a malformed shape")
        if any(loops[depth:]):
            raise reader.fail(index, f"{op.mnemonic} {name} strides over loops that do not enclose it")
        operands.append(Operand(space, number, dtype, base, tuple(sizes[:rank]), tuple(strides[:rank]), tuple(loops)))
    return Instr(op, core, queue, tuple(operands), tuple(values), wait, None if signal == NO_SIGNAL else signal)


# --- the parameter blob ------------------------------------------------------------------

PARAMS_HEADER = struct.Struct("<4sHHIIIIQQ")
SEGMENT = struct.Struct("<QQIHBB4I")
assert PARAMS_HEADER.size == 40 and SEGMENT.size == 40


@dataclass(frozen=True)
class Segment:
    """One parameter in the blob's data area: `offset` bytes from the area's start."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_OF_CODE[self.dtype].itemsize

    @property
    def end(self) -> int:
        return self.offset + self.nbytes


def align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def params_layout(segments: Sequence[Segment], alignment: int) -> tuple[bytes, int]:
    """The header + table + names bytes (padded to `alignment`) and the data area size."""
    names = [s.name.encode() for s in segments]
    pool = b"".join(names)
    table_end = PARAMS_HEADER.size + SEGMENT.size * len(segments)
    data_offset = align(table_end + len(pool), alignment)
    data_bytes = align(max((s.end for s in segments), default=0), alignment)
    head = [PARAMS_HEADER.pack(PARAMS_MAGIC, PARAMS_VERSION, PARAMS_HEADER.size, alignment, len(segments), len(pool), 0, data_offset, data_bytes)]
    position = 0
    for segment, name in zip(segments, names):
        shape = _pad(segment.shape, MAX_RANK)
        head.append(SEGMENT.pack(segment.offset, segment.nbytes, position, len(name), segment.dtype, len(segment.shape), *shape))
        position += len(name)
    head.append(pool)
    prefix = b"".join(head)
    return prefix + bytes(data_offset - len(prefix)), data_bytes


@dataclass(frozen=True)
class ParamsBlob:
    segments: tuple[Segment, ...]
    alignment: int
    data_offset: int
    data_bytes: int


def decode_params(blob: bytes | memoryview, where: str = "npu_params") -> ParamsBlob:
    """The segment table of a parameter blob, after checking it."""

    def fail(what: str) -> AxcError:
        return AxcError(f"{where}: {what}; the parameter blob is corrupt, rebuild the .axmodel")

    if len(blob) < PARAMS_HEADER.size:
        raise AxcError(f"{where}: {len(blob)} bytes, shorter than the {PARAMS_HEADER.size}-byte header (truncated); rebuild the .axmodel")
    magic, version, header_size, alignment, count, pool, reserved, data_offset, data_bytes = PARAMS_HEADER.unpack_from(blob)
    if magic != PARAMS_MAGIC:
        raise AxcError(f"{where}: wrong magic {bytes(magic)!r} (expected {PARAMS_MAGIC!r}); not an axc parameter blob")
    if version != PARAMS_VERSION:
        raise AxcError(f"{where}: parameter blob version {version}, this axc reads {PARAMS_VERSION}; rebuild the .axmodel")
    if header_size != PARAMS_HEADER.size or reserved or alignment < 1 or alignment & (alignment - 1) or alignment > 1 << 16:
        raise fail("malformed header")
    table_end = PARAMS_HEADER.size + SEGMENT.size * count
    if (
        table_end + pool > data_offset
        or data_offset != align(table_end + pool, alignment)
        or data_offset + data_bytes != len(blob)
        or data_bytes % alignment
    ):
        raise fail(f"sizes do not add up ({len(blob)} bytes)")
    names = bytes(blob[table_end : table_end + pool])
    segments: list[Segment] = []
    position = 0
    for index in range(count):
        offset, nbytes, name_at, name_len, dtype, rank, *shape = SEGMENT.unpack_from(blob, PARAMS_HEADER.size + index * SEGMENT.size)
        if name_at != position or name_at + name_len > pool:
            raise fail(f"segment {index} name outside the name pool")
        position += name_len
        try:
            name = names[name_at : name_at + name_len].decode()
        except UnicodeDecodeError:
            raise fail(f"segment {index} name is not UTF-8") from None
        if dtype not in DTYPE_OF_CODE or not 1 <= rank <= MAX_RANK or any(shape[rank:]):
            raise fail(f"segment {index} ({name!r}) has a malformed type")
        segment = Segment(name, dtype, tuple(shape[:rank]), offset)
        previous = segments[-1].end if segments else 0
        if segment.nbytes != nbytes or offset % alignment or offset < previous or segment.end > data_bytes:
            raise fail(f"segment {index} ({name!r}) at {offset} of {nbytes} bytes is misplaced")
        segments.append(segment)
    if position != pool or len({s.name for s in segments}) != len(segments):
        raise fail("the name pool has unused bytes or duplicate names")
    return ParamsBlob(tuple(segments), alignment, data_offset, data_bytes)
