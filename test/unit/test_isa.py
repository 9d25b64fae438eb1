"""The instruction set: one opcode per npu op with the same operands and properties, and
records that encode and decode to the same program."""

from __future__ import annotations

import numpy as np
import pytest

from axc import isa
from axc.isa import encoding
from axc.isa import Instr, Loop, Operand, Program
from axc.dialects import npu, tfm
from axc.errors import AxcError


@pytest.mark.parametrize("op", npu.ACCESS_OPS, ids=lambda op: op.name)
def test_every_npu_op_has_an_instruction(op) -> None:
    info = isa.OP_BY_NAME[op.name.split(".", 1)[1]]
    assert info.operands == (*op.INS, *op.OPTS, *op.OUTS)
    assert info.optional == frozenset(op.OPTS) and info.outputs == frozenset(op.OUTS)
    properties = op.get_irdl_definition().properties
    names = {*properties, *(tfm.ROPE_FIELDS if op is npu.RopeOp else ())}  # npu.rope: one #tfm.rope property
    assert all(imm.name in names for imm in info.imms)
    assert {"dma": "dma", "matrix": "matrix", "vector": "vector"}[op.ENGINE] == info.engine


def random_operand(rng: np.random.Generator, depth: int) -> Operand:
    rank = int(rng.integers(1, isa.MAX_RANK + 1))
    space = int(rng.integers(1, 6))
    loops = [int(rng.integers(-64, 64)) if d < depth else 0 for d in range(isa.MAX_DEPTH)]
    return Operand(
        space,
        int(rng.integers(0, 4)) if space in (isa.INPUT, isa.OUTPUT) else 0,
        int(rng.choice(list(isa.DTYPE_OF_CODE))),
        int(rng.integers(0, 1 << 20)),
        tuple(int(s) for s in rng.integers(1, 100, rank)),
        tuple(int(s) for s in rng.integers(0, 1000, rank)),
        tuple(loops),
    )


def random_instr(rng: np.random.Generator, depth: int) -> Instr:
    op = isa.OPCODES[int(rng.integers(2, len(isa.OPCODES)))]
    values: list[int | float | str | bool] = []
    for imm in op.imms:
        if imm.kind == "flag":
            values.append(bool(rng.integers(0, 2)))
        elif imm.kind == "enum":
            values.append(imm.choices[int(rng.integers(0, len(imm.choices)))])
        elif imm.kind == "float":
            values.append(float(rng.standard_normal()))
        else:
            values.append(int(rng.integers(0, 1 << 20)))
    operands = tuple(
        None if name in op.optional and rng.random() < 0.5 else random_operand(rng, depth) for name in op.operands
    )
    queue = int(rng.choice(isa.ENGINE_QUEUES[op.engine]))
    signal = None if rng.random() < 0.5 else int(rng.integers(0, isa.TOKENS))
    return Instr(op, int(rng.integers(0, 3)), queue, operands, tuple(values), int(rng.integers(0, 1 << 63)), signal)


def random_body(rng: np.random.Generator, depth: int, count: int) -> list:
    body: list = []
    for _ in range(count):
        if depth < isa.MAX_DEPTH and rng.random() < 0.2:
            body.append(Loop(int(rng.integers(1, 4)), random_body(rng, depth + 1, int(rng.integers(1, 4)))))
        else:
            body.append(random_instr(rng, depth))
    return body


def test_encode_decode_is_the_identity() -> None:
    rng = np.random.default_rng(7)
    for trial in range(30):
        program = Program(trial % 2, 3, int(rng.integers(0, 1 << 16)), 5, 3, random_body(rng, 0, 12))
        data = encoding.encode_program(program)
        assert len(data) == encoding.HEADER.size + encoding.RECORD_SIZE * (len(data) - encoding.HEADER.size) // encoding.RECORD_SIZE
        assert encoding.decode_program(data) == program
        assert encoding.encode_program(encoding.decode_program(data)) == data


def test_params_layout_round_trips() -> None:
    segments = [encoding.Segment("a", 11, (3, 5), 0), encoding.Segment("bé", 2, (7,), 64), encoding.Segment("c", 10, (2, 2, 2), 128)]
    prefix, data_bytes = encoding.params_layout(segments, 64)
    blob = prefix + bytes(data_bytes)
    decoded = encoding.decode_params(blob)
    assert decoded.segments == tuple(segments) and decoded.data_offset == len(prefix) and decoded.data_bytes == 192
    with pytest.raises(AxcError, match="misplaced"):
        bad, size = encoding.params_layout([encoding.Segment("a", 11, (3, 5), 0), encoding.Segment("b", 2, (7,), 32)], 64)
        encoding.decode_params(bad + bytes(size))


def test_the_format_document_lists_every_opcode_and_type() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "axmodel-format.md").read_text()
    for op in isa.OPCODES:
        assert f"| 0x{op.code:02x} | `{op.mnemonic}` | {op.engine} |" in doc, op.mnemonic
    for code, name, dtype in isa.DTYPES:
        assert f"| {code} | `{name}` | {dtype.itemsize} |" in doc, name
    assert f"fixed-size records of {encoding.RECORD_SIZE} bytes" in doc
