"""The binary encoding of `axc.isa` programs and of the parameter blob.

A command stream (`subgraph_npu_<k>_b1_neu`) is a 64-byte header followed by fixed-size
432-byte little-endian records. A parameter blob (`npu_params`) is a 40-byte header, a
segment table, a name pool and the aligned data area. Both are versioned; docs/axmodel-format.md
documents them field by field.

```python
program = Program(chip=0, cores=1, scratch_bytes=0, inputs=5, outputs=3, body=[...])
data = encode_program(program)
assert decode_program(data) == program
```
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from axc.errors import AxcError
from axc.isa import (
    CHIPS,
    CONTROL_QUEUE,
    DTYPE_OF_CODE,
    END,
    ENGINE_QUEUES,
    IMM_SLOTS,
    LOOP,
    MAX_DEPTH,
    MAX_DYNAMIC,
    MAX_IMM,
    MAX_OPERANDS,
    MAX_RANK,
    NO_SIGNAL,
    NONE,
    OCM,
    OP_BY_CODE,
    OPCODES,
    PARAMS,
    PARAMS_MAGIC,
    PARAMS_VERSION,
    SCRATCH,
    SPACE_NAMES,
    STREAM_MAGIC,
    STREAM_VERSION,
    TOKENS,
    Instr,
    Loop,
    Node,
    OpInfo,
    Operand,
    Program,
    align,
    dynamic_count,
    ocm_bytes,
)

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
