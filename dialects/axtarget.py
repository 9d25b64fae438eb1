"""Definitions shared by the target dialects `ax650` and `ax620e` (engine-level instructions).

The two chips run one instruction set (`axc.isa`); `target_dialect(prefix, family)`
instantiates the same op classes under each prefix, so `ax650.matmul` and `ax620e.matmul`
differ only in the chip whose descriptor decides their legality. Every address is
resolved: an operand is a strided box of bytes in OCM, the parameter blob, DDR scratch or
one of the group's I/O buffers, with one per-iteration stride per enclosing loop level:

```mlir
ax650.model @layer_0 {chip = "AX650", npu_mode = "NPU1"} {
  ax650.segment <"axc"::"model.layers.0.mlp.up_proj.s8"> at 0 : tensor<160x64xi8>
  ax650.group "decode" (input : tensor<1x1x64xbf16>) -> (output : tensor<1x1x64xbf16>) scratch 0 {
    ax650.loop l0 = 0 to 2 {
      ax650.dma_load c0.dma0 wait [3] signal 1 src = params[0 + 4096 * l0 : 64x64 : 64x1] : i8, dst = ocm[0 : 64x64 : 64x1] : i8
      ax650.matmul c0.mx wait [1] signal 3 lhs = ocm[4096 : 1x64 : 128x2] : bf16, rhs = ocm[0 : 64x64 : 64x1] : i8,
          scales = ocm[8192 : 64x1 : 2x2] : f16, out = ocm[8320 + 128 * l0 : 1x64 : 320x2] : bf16 {format = "s8", transpose_b}
    }
  }
}
```

An instruction runs on one queue of one core (`c<core>.dma<channel>`, `c<core>.mx` for the
matrix engine, `c<core>.vx` for the vector engine, `c<core>.cv` for the convolution units,
which take float matmuls on AX650 only). It starts once every instruction
dispatched before it that signals a token in `wait` has completed; queues run in order.
The model's descriptor (chip, npu_mode) decides what is legal: asking AX620E for fp8
weights is a verification error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, cast

from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    DictionaryAttr,
    Float8E4M3FNType,
    Float8E5M2Type,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    Signedness,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
    i64,
)
from xdsl.ir import Attribute, Block, Data, Dialect, Operation
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    region_def,
    traits_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator
from xdsl.utils.exceptions import VerifyException

from axc import isa
from axc.isa import Instr, Loop, Node, Operand, Program
from axc.isa.encoding import Segment
from axc.isa.legality import check_instr_legality, check_program
from axc.dialects.axc import ParamAttr
from axc.errors import AxcError
from axc.targets import TargetDescriptor, get_target

ELEMENT_TYPES: dict[int, Attribute] = {
    1: IntegerType(8, Signedness.UNSIGNED),
    2: IntegerType(8),
    3: IntegerType(16, Signedness.UNSIGNED),
    4: IntegerType(16),
    5: IntegerType(32, Signedness.UNSIGNED),
    6: IntegerType(32),
    7: IntegerType(64, Signedness.UNSIGNED),
    8: IntegerType(64),
    9: Float16Type(),
    10: BFloat16Type(),
    11: Float32Type(),
    12: Float64Type(),
    13: Float8E4M3FNType(),
    14: Float8E5M2Type(),
}
CODE_OF_TYPE: dict[Attribute, int] = {t: c for c, t in ELEMENT_TYPES.items()}
assert set(ELEMENT_TYPES) == set(isa.DTYPE_OF_CODE)


def element_code(element: Attribute, what: str = "element type") -> int:
    code = CODE_OF_TYPE.get(element)
    if code is None:
        raise VerifyException(f"{what} {element} has no NPU encoding (use one of {', '.join(isa.NAME_OF_CODE.values())})")
    return code


def dims(values: Sequence[int]) -> str:
    return "x".join(map(str, values))


# --- operands ----------------------------------------------------------------------------

NO_OPERAND = Operand(isa.NONE, 0, 0, 0, (), ())
SPACE_OF_NAME = {name: space for space, name in isa.SPACE_NAMES.items()}


def format_operand(operand: Operand) -> str:
    """`in0[64 + 128 * l0 : 1x64 : 128x2] : bf16` (addresses and strides in bytes)."""
    space = isa.SPACE_NAMES[operand.space]
    if operand.space in (isa.INPUT, isa.OUTPUT):
        space += str(operand.index)
    terms = [str(operand.base)] + [f"{c} * l{d}" for d, c in enumerate(operand.loop_strides) if c]
    return f"{space}[{' + '.join(terms)} : {dims(operand.sizes)} : {dims(operand.strides)}] : {isa.NAME_OF_CODE[operand.dtype]}"


def parse_operand(parser: AttrParser) -> Operand:
    name = parser.parse_identifier(" (a memory space: ocm, params, scratch, in<k>, out<k>)")
    index = 0
    space = SPACE_OF_NAME.get(name)
    for prefix, kind in (("in", isa.INPUT), ("out", isa.OUTPUT)):
        if space is None and name.startswith(prefix) and name[len(prefix) :].isdecimal():
            space, index = kind, int(name[len(prefix) :])
    if space is None or space == isa.NONE:
        parser.raise_error(f"unknown memory space '{name}' (ocm, params, scratch, in<k>, out<k>)")
    parser.parse_punctuation("[")
    base = parser.parse_integer(allow_negative=False)
    loops = [0] * isa.MAX_DEPTH
    while parser.parse_optional_punctuation("+") is not None:
        coeff = parser.parse_integer(allow_negative=True)
        parser.parse_punctuation("*")
        level = parser.parse_identifier(" (a loop level l0..l3)")
        if not (level.startswith("l") and level[1:].isdecimal() and int(level[1:]) < isa.MAX_DEPTH):
            parser.raise_error(f"unknown loop level '{level}' (l0..l{isa.MAX_DEPTH - 1})")
        loops[int(level[1:])] += coeff
    parser.parse_punctuation(":")
    sizes = parser.parse_dimension_list()
    parser.parse_punctuation(":")
    strides = parser.parse_dimension_list()
    parser.parse_punctuation("]")
    parser.parse_punctuation(":")
    element = parser.parse_type()
    if element not in CODE_OF_TYPE:
        parser.raise_error(f"element type {element} has no NPU encoding")
    if len(sizes) != len(strides) or any(v < 0 for v in (*sizes, *strides)):
        parser.raise_error("an operand needs as many non-negative strides as sizes")
    return Operand(space, index, CODE_OF_TYPE[element], base, tuple(sizes), tuple(strides), tuple(loops))


class ViewAttr(Data[Operand]):
    """One instruction operand: `#ax650.view<ocm[0 : 64x64 : 64x1] : i8>`."""

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> Operand:
        with parser.in_angle_brackets():
            if parser.parse_optional_keyword("none") is not None:
                return NO_OPERAND
            return parse_operand(parser)

    def print_parameter(self, printer: Printer) -> None:
        printer.print_string("<none>" if self.data.space == isa.NONE else f"<{format_operand(self.data)}>")


# --- instructions ------------------------------------------------------------------------


def int_prop(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


def imm_attr(imm: isa.Imm, value: int | float | str | bool) -> Attribute | None:
    if imm.kind == "flag":
        return UnitAttr() if value else None
    if imm.kind == "float":
        return FloatAttr(float(value), f64)
    if imm.kind == "enum":
        return StringAttr(str(value))
    return int_prop(int(value))


def queue_name(core: int, queue: int) -> str:
    return f"c{core}.{isa.QUEUE_NAMES[queue]}"


class Instruction(IRDLOperation):
    """An engine instruction; subclasses are generated from `isa.OPCODES`."""

    INFO: ClassVar[isa.OpInfo]
    VIEW: ClassVar[type[ViewAttr]]

    core = prop_def(IntegerAttr)
    queue = prop_def(IntegerAttr)
    views = prop_def(ArrayAttr)
    wait = opt_prop_def(ArrayAttr)
    signal = opt_prop_def(IntegerAttr)

    @classmethod
    def from_instr(cls, instr: Instr) -> Instruction:
        props: dict[str, Attribute] = {
            "core": int_prop(instr.core),
            "queue": int_prop(instr.queue),
            "views": ArrayAttr([cls.VIEW(o if o is not None else NO_OPERAND) for o in instr.operands]),
        }
        if instr.wait:
            props["wait"] = ArrayAttr([int_prop(t) for t in range(isa.TOKENS) if instr.wait >> t & 1])
        if instr.signal is not None:
            props["signal"] = int_prop(instr.signal)
        for imm, value in zip(cls.INFO.imms, instr.values):
            attr = imm_attr(imm, value)
            if attr is not None and not (imm.kind != "flag" and value == imm.default):
                props[imm.name] = attr
        return cls.create(properties=props)

    def to_instr(self) -> Instr:
        info = self.INFO
        values: list[int | float | str | bool] = []
        for imm in info.imms:
            attr = self.properties.get(imm.name)
            if imm.kind == "flag":
                values.append(attr is not None)
            elif attr is None:
                values.append(cast(int | float | str, imm.default))
            elif isinstance(attr, StringAttr):
                values.append(attr.data)
            elif isinstance(attr, FloatAttr):
                values.append(attr.value.data)
            else:
                values.append(cast(IntegerAttr, attr).value.data)
        wait = 0
        for token in self.wait.data if self.wait is not None else ():
            wait |= 1 << cast(IntegerAttr, token).value.data
        operands = tuple(
            None if v.data.space == isa.NONE else v.data for v in cast(Sequence[ViewAttr], self.views.data)
        )
        return Instr(
            info,
            self.core.value.data,
            self.queue.value.data,
            operands,
            tuple(values),
            wait,
            None if self.signal is None else self.signal.value.data,
        )

    def verify_(self) -> None:
        info = self.INFO
        name = self.name
        if len(self.views.data) != len(info.operands) or not all(isinstance(v, self.VIEW) for v in self.views.data):
            raise VerifyException(f"'{name}' op needs {len(info.operands)} operand views ({', '.join(info.operands)})")
        for slot, view in zip(info.operands, cast(Sequence[ViewAttr], self.views.data)):
            if view.data.space == isa.NONE and slot not in info.optional:
                raise VerifyException(f"'{name}' op lacks its {slot} operand")
        if self.queue.value.data not in isa.ENGINE_QUEUES[info.engine]:
            raise VerifyException(f"'{name}' op runs on the {info.engine} engine, not queue {self.queue.value.data}")
        for imm in info.imms:
            attr = self.properties.get(imm.name)
            if imm.kind == "enum" and attr is not None and (not isinstance(attr, StringAttr) or attr.data not in imm.choices):
                raise VerifyException(f"'{name}' op {imm.name} must be one of {', '.join(imm.choices)}")
            if attr is None and imm.kind not in ("flag",) and imm.default is None:
                raise VerifyException(f"'{name}' op needs {imm.name}")
        for token in self.wait.data if self.wait is not None else ():
            if not isinstance(token, IntegerAttr) or not 0 <= token.value.data < isa.TOKENS:
                raise VerifyException(f"'{name}' op waits on a token outside 0..{isa.TOKENS - 1}")
        if self.signal is not None and not 0 <= self.signal.value.data < isa.TOKENS:
            raise VerifyException(f"'{name}' op signals a token outside 0..{isa.TOKENS - 1}")
        try:
            check_instr_legality(self.to_instr(), family_target(self.name.split(".")[0]), f"'{name}' op")
        except AxcError as error:
            raise VerifyException(str(error)) from None

    def print(self, printer: Printer) -> None:
        printer.print_string(" " + queue_name(self.core.value.data, self.queue.value.data))
        if self.wait is not None:
            printer.print_string(" wait [" + ", ".join(str(cast(IntegerAttr, t).value.data) for t in self.wait.data) + "]")
        if self.signal is not None:
            printer.print_string(f" signal {self.signal.value.data}")
        first = True
        for slot, view in zip(self.INFO.operands, cast(Sequence[ViewAttr], self.views.data)):
            if view.data.space == isa.NONE:
                continue
            printer.print_string((" " if first else ", ") + f"{slot} = {format_operand(view.data)}")
            first = False
        shown = {imm.name: self.properties[imm.name] for imm in self.INFO.imms if imm.name in self.properties}
        printer.print_op_attributes({**shown, **self.attributes})

    @classmethod
    def parse(cls, parser: Parser) -> Instruction:
        info = cls.INFO
        where = parser.parse_identifier(" (a queue such as c0.mx, c0.vx or c0.dma1)")
        core_text, _, queue_text = where.partition(".")
        queues = {n: q for q, n in isa.QUEUE_NAMES.items()}
        if not (core_text.startswith("c") and core_text[1:].isdecimal() and queue_text in queues):
            parser.raise_error(f"unknown queue '{where}' (c<core>.dma<0-3>, c<core>.mx, c<core>.vx or c<core>.cv)")
        props: dict[str, Attribute] = {"core": int_prop(int(core_text[1:])), "queue": int_prop(queues[queue_text])}
        if parser.parse_optional_keyword("wait") is not None:
            tokens = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_integer)
            props["wait"] = ArrayAttr([int_prop(t) for t in tokens])
        if parser.parse_optional_keyword("signal") is not None:
            props["signal"] = int_prop(parser.parse_integer())
        views: dict[str, Operand] = {}
        while (slot := parser.parse_optional_identifier()) is not None:
            if slot not in info.operands or slot in views:
                parser.raise_error(f"'{cls.name}' has no operand '{slot}' here (operands: {', '.join(info.operands)})")
            parser.parse_punctuation("=")
            views[slot] = parse_operand(parser)
            if parser.parse_optional_punctuation(",") is None:
                break
        sync: dict[str, Attribute] = {k: props.pop(k) for k in ("wait", "signal") if k in props}
        props["views"] = ArrayAttr([cls.VIEW(views.get(slot, NO_OPERAND)) for slot in info.operands])
        props.update(sync)  # the order `from_instr` uses, so generic printing is stable
        attrs = parser.parse_optional_attr_dict()
        names = {imm.name for imm in info.imms}
        for key, value in attrs.items():
            if key not in names:
                parser.raise_error(f"'{cls.name}' has no immediate '{key}' (immediates: {', '.join(sorted(names)) or 'none'})")
            props[key] = value
        return cls.create(properties=props)


class LoopOpBase(IRDLOperation):
    """Repeat the body `trips` times: `ax650.loop l0 = 0 to 38 { ... }`.

    The counter of the loop at nesting depth `d` is `l<d>` in the body's addresses.
    """

    trips = prop_def(IntegerAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    def verify_(self) -> None:
        if self.trips.value.data < 1:
            raise VerifyException(f"'{self.name}' op needs at least one trip")
        depth = sum(1 for _ in loop_ancestors(self))
        if depth >= isa.MAX_DEPTH:
            raise VerifyException(f"'{self.name}' op nested deeper than {isa.MAX_DEPTH} loops")

    def print(self, printer: Printer) -> None:
        depth = sum(1 for _ in loop_ancestors(self))
        printer.print_string(f" l{depth} = 0 to {self.trips.value.data} ")
        printer.print_region(self.body, print_entry_block_args=False, print_empty_block=True)

    @classmethod
    def parse(cls, parser: Parser) -> LoopOpBase:
        parser.parse_identifier(" (the loop level, l<depth>)")
        parser.parse_punctuation("=")
        if parser.parse_integer() != 0:
            parser.raise_error("target loops count from 0")
        parser.parse_keyword("to")
        trips = parser.parse_integer()
        body = parser.parse_region()
        if not body.blocks:
            body.add_block(Block())
        return cls.create(properties={"trips": int_prop(trips)}, regions=[body])


def loop_ancestors(op: Operation):
    current = op.parent_op()
    while current is not None and isinstance(current, LoopOpBase):
        yield current
        current = current.parent_op()


class SegmentOpBase(IRDLOperation):
    """A parameter placed in the model's blob: `ax650.segment <"axc"::"w"> at 4096 : tensor<64x64xi8>`.

    `at` is the byte offset in the blob's data area; instructions address it directly.
    """

    param = prop_def(ParamAttr)
    offset = prop_def(IntegerAttr)
    type = prop_def(TensorType)

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        self.param.print_parameters(printer)
        printer.print_string(f" at {self.offset.value.data} : ")
        printer.print_attribute(self.type)

    @classmethod
    def parse(cls, parser: Parser) -> SegmentOpBase:
        param = ParamAttr(*ParamAttr.parse_parameters(parser))  # type: ignore[arg-type]  # parse_parameters returns the two StringAttrs ParamAttr takes
        parser.parse_keyword("at")
        offset = parser.parse_integer(allow_negative=False)
        parser.parse_punctuation(":")
        type_ = parser.parse_type()
        return cls.create(properties={"param": param, "offset": int_prop(offset), "type": type_})

    def verify_(self) -> None:
        element_code(self.type.get_element_type(), f"'{self.name}' op")

    def segment(self, name: str) -> Segment:
        type_ = self.type
        return Segment(name, element_code(type_.get_element_type()), tuple(type_.get_shape()), self.offset.value.data)


def io_list(names: ArrayAttr, types: ArrayAttr) -> list[tuple[str, TensorType]]:
    return [(cast(StringAttr, n).data, cast(TensorType, t)) for n, t in zip(names.data, types.data)]


class GroupOpBase(IRDLOperation):
    """One shape group: its I/O (as the runtime names them), DDR scratch bytes and program.

    `ax650.group "decode" (input : tensor<1x1x64xbf16>) -> (output : tensor<1x1x64xbf16>) scratch 0 { ... }`
    """

    label = prop_def(StringAttr)
    input_names = prop_def(ArrayAttr)
    input_types = prop_def(ArrayAttr)
    output_names = prop_def(ArrayAttr)
    output_types = prop_def(ArrayAttr)
    scratch = prop_def(IntegerAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    def inputs(self) -> list[tuple[str, TensorType]]:
        return io_list(self.input_names, self.input_types)

    def outputs(self) -> list[tuple[str, TensorType]]:
        return io_list(self.output_names, self.output_types)

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.label.data)
        for index, io in enumerate((self.inputs(), self.outputs())):
            printer.print_string(" (" if index == 0 else " -> (")
            for position, (name, type_) in enumerate(io):
                printer.print_string(("" if position == 0 else ", ") + f"{name} : ")
                printer.print_attribute(type_)
            printer.print_string(")")
        printer.print_string(f" scratch {self.scratch.value.data} ")
        printer.print_region(self.body, print_entry_block_args=False, print_empty_block=True)

    @classmethod
    def parse(cls, parser: Parser) -> GroupOpBase:
        label = parser.parse_str_literal()

        def entry() -> tuple[str, Attribute]:
            name = parser.parse_identifier_or_str_literal()
            parser.parse_punctuation(":")
            return name, parser.parse_type()

        inputs = parser.parse_comma_separated_list(parser.Delimiter.PAREN, entry)
        parser.parse_punctuation("->")
        outputs = parser.parse_comma_separated_list(parser.Delimiter.PAREN, entry)
        parser.parse_keyword("scratch")
        scratch = parser.parse_integer(allow_negative=False)
        body = parser.parse_region()
        if not body.blocks:
            body.add_block(Block())
        return cls.build(
            properties={
                "label": StringAttr(label),
                "input_names": ArrayAttr([StringAttr(n) for n, _ in inputs]),
                "input_types": ArrayAttr([t for _, t in inputs]),
                "output_names": ArrayAttr([StringAttr(n) for n, _ in outputs]),
                "output_types": ArrayAttr([t for _, t in outputs]),
                "scratch": int_prop(scratch),
            },
            regions=[body],
        )

    def verify_(self) -> None:
        for name, type_ in (*self.inputs(), *self.outputs()):
            if not isinstance(type_, TensorType) or not type_.has_static_shape():
                raise VerifyException(f"'{self.name}' op I/O {name} needs a static tensor type")
        if not self.outputs():
            raise VerifyException(f"'{self.name}' op needs at least one output")

    def to_program(self, chip: int, cores: int) -> Program:
        """The group's instructions as an `isa.Program` (what the command stream encodes)."""
        return Program(
            chip, cores, self.scratch.value.data, len(self.inputs()), len(self.outputs()), body_nodes(self.body.block)
        )


def body_nodes(block: Block) -> list[Node]:
    nodes: list[Node] = []
    for op in block.ops:
        if isinstance(op, LoopOpBase):
            nodes.append(Loop(op.trips.value.data, body_nodes(op.body.block)))
        elif isinstance(op, Instruction):
            nodes.append(op.to_instr())
        else:
            raise VerifyException(f"{op.name} cannot appear in a target program")
    return nodes


class ModelOpBase(IRDLOperation):
    """One `.axmodel` file: parameter segments shared by its shape groups, and metadata.

    `ax650.model @layer_0 {chip = "AX650N", npu_mode = "NPU3", metadata = {build_options = "{}"}} { ... }`
    """

    FAMILY: ClassVar[str]
    sym_name = prop_def(StringAttr)
    chip = prop_def(StringAttr)
    npu_mode = prop_def(StringAttr)
    metadata = opt_prop_def(DictionaryAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_symbol_name(self.sym_name.data)
        props: dict[str, Attribute] = {"chip": self.chip, "npu_mode": self.npu_mode}
        if self.metadata is not None:
            props["metadata"] = self.metadata
        printer.print_op_attributes({**props, **self.attributes})
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False, print_empty_block=True)

    @classmethod
    def parse(cls, parser: Parser) -> ModelOpBase:
        name = parser.parse_symbol_name()
        attrs = parser.parse_optional_attr_dict()
        props: dict[str, Attribute | None] = {k: attrs.pop(k) for k in ("chip", "npu_mode", "metadata") if k in attrs}
        body = parser.parse_region()
        if not body.blocks:
            body.add_block(Block())
        op = cls.build(properties={"sym_name": name, **props}, regions=[body])
        op.attributes.update(attrs)
        return op

    def target(self) -> TargetDescriptor:
        try:
            target = get_target(self.chip.data, self.npu_mode.data)
        except AxcError as error:
            raise VerifyException(f"'{self.name}' op: {error}") from None
        if target.family != self.FAMILY:
            raise VerifyException(f"'{self.name}' op is for the {self.FAMILY} family, not chip {self.chip.data} ({target.family})")
        return target

    def segments(self) -> list[SegmentOpBase]:
        return [op for op in self.body.block.ops if isinstance(op, SegmentOpBase)]

    def groups(self) -> list[GroupOpBase]:
        return [op for op in self.body.block.ops if isinstance(op, GroupOpBase)]

    def metadata_dict(self) -> dict[str, str]:
        if self.metadata is None:
            return {}
        return {k: v.data for k, v in self.metadata.data.items() if isinstance(v, StringAttr)}

    def segment_names(self) -> list[str]:
        """Names of the segments in the blob: the parameter key, made unique by its scope."""
        keys = [op.param.key.data for op in self.segments()]
        return [
            key if keys.count(key) == 1 else f"{op.param.scope.data}::{key}"
            for key, op in zip(keys, self.segments())
        ]

    def verify_(self) -> None:
        try:
            self.check()
        except AxcError as error:
            raise VerifyException(f"'{self.name}' op: {error}") from None

    def check(self) -> list[Program]:
        """The model's programs, after the checks the binary decoder makes too (AxcError)."""
        target = self.target()
        ops = list(self.body.block.ops)
        if any(not isinstance(op, (SegmentOpBase, GroupOpBase)) for op in ops):
            raise AxcError("a model holds only segments and groups")
        if self.metadata is not None and any(not isinstance(v, StringAttr) for v in self.metadata.data.values()):
            raise AxcError("metadata values must be strings")
        segments = [op.segment(name) for op, name in zip(self.segments(), self.segment_names())]
        alignment = target.ddr_alignment
        end = 0
        for segment in segments:
            if segment.offset % alignment or segment.offset < end:
                raise AxcError(
                    f"segment {segment.name} at {segment.offset} overlaps the previous one or is not {alignment}-byte aligned"
                )
            end = segment.end
        if len({s.name for s in segments}) != len(segments):
            raise AxcError("a parameter is placed twice")
        if not self.groups():
            raise AxcError("a model needs at least one group")
        params = isa.align(end, alignment)
        programs = []
        for index, group in enumerate(self.groups()):
            program = group.to_program(family_code(self.FAMILY), target.cores)
            check_program(program, target, spaces_of(group, params), f"group {index}")
            programs.append(program)
        return programs


def spaces_of(group: GroupOpBase, params_bytes: int) -> dict[tuple[int, int], tuple[int, int | None]]:
    """Bytes (and element type) of every DDR space a group's program may address."""
    spaces: dict[tuple[int, int], tuple[int, int | None]] = {
        (isa.PARAMS, 0): (params_bytes, None),
        (isa.SCRATCH, 0): (group.scratch.value.data, None),
    }
    for space, io in ((isa.INPUT, group.inputs()), (isa.OUTPUT, group.outputs())):
        for index, (_, type_) in enumerate(io):
            code = CODE_OF_TYPE.get(type_.get_element_type())
            size = math.prod(type_.get_shape()) * (isa.DTYPE_OF_CODE[code].itemsize if code else 0)
            spaces[(space, index)] = (size, code)
    return spaces


# --- legality (shared with the binary decoder: axc.isa.legality) ----------------------


def family_code(family: str) -> int:
    return isa.CHIPS.index(family)


def family_target(prefix: str) -> TargetDescriptor:
    return get_target(DIALECT_FAMILIES[prefix])


DIALECT_FAMILIES: dict[str, str] = {}


# --- the dialect factory -----------------------------------------------------------------


def target_dialect(prefix: str, family: str) -> Dialect:
    """The dialect `prefix` (e.g. `ax650`) of the chip family `family`, from the shared classes."""
    DIALECT_FAMILIES[prefix] = family
    title = prefix.capitalize()
    view = irdl_attr_definition(type(f"{title}ViewAttr", (ViewAttr,), {"name": f"{prefix}.view", "__module__": __name__}))
    ops: list[type[Operation]] = []
    for info in isa.OPCODES:
        if info.engine == "control":
            continue
        fields: dict[str, object] = {
            "name": f"{prefix}.{info.mnemonic}",
            "INFO": info,
            "VIEW": view,
            "__module__": __name__,
            "__doc__": f"`{prefix}.{info.mnemonic}`: opcode 0x{info.code:02x} on the {info.engine} engine (axc.isa).",
            "__annotations__": {"INFO": ClassVar[isa.OpInfo], "VIEW": ClassVar[type[ViewAttr]]},
        }
        for imm in info.imms:
            if imm.kind == "flag":
                fields[imm.name] = opt_prop_def(UnitAttr)
            else:
                kind = {"int": IntegerAttr, "float": FloatAttr, "enum": StringAttr}[imm.kind]
                fields[imm.name] = opt_prop_def(kind)  # type: ignore[arg-type]  # opt_prop_def accepts an attribute class; the union of three confuses its overloads
        class_name = title + "".join(part.capitalize() for part in info.mnemonic.split("_")) + "Op"
        ops.append(irdl_op_definition(type(class_name, (Instruction,), fields)))
    for base, suffix in ((LoopOpBase, "loop"), (SegmentOpBase, "segment"), (GroupOpBase, "group"), (ModelOpBase, "model")):
        fields = {"name": f"{prefix}.{suffix}", "__module__": __name__, "__doc__": base.__doc__}
        if base is ModelOpBase:
            fields["FAMILY"] = family
            fields["__annotations__"] = {"FAMILY": ClassVar[str]}
        ops.append(irdl_op_definition(type(f"{title}{suffix.capitalize()}Op", (base,), fields)))
    return Dialect(prefix, ops, [view])


def ops_by_suffix(dialect: Dialect) -> dict[str, type[IRDLOperation]]:
    """`{"matmul": Ax650MatmulOp, "loop": ..., "model": ...}` of one target dialect."""
    return {op.name.split(".", 1)[1]: cast(type[IRDLOperation], op) for op in dialect.operations}
