"""The `npu` dialect: the tensor-tile level, close to what the NPU engines execute.

Buffers live in on-chip memory (`ocm`) or in DDR (`ddr` scratch and outputs); DMA moves
strided boxes between DDR values (function arguments, parameters, `ddr` buffers) and OCM
buffers; the matrix engine runs `npu.matmul` on OCM tiles (dequantizing s8/s4/fp8 weight
tiles on the fly); the vector engine runs norms, rope, softmax pieces, activations and
elementwise ops. `npu.loop` repeats a body over tiles; every buffer access is a strided
view whose element offset is affine in the enclosing induction variables, so loops stay
compact instead of unrolled streams:

```mlir
%w = npu.alloc {alignment = 32 : i64} : !npu.buf<128x896xi8, ocm>
npu.loop %n = 0 to 7 {
  npu.dma_load %wq[114688 * %n : 128x896] -> %w : tensor<896x896xi8>, !npu.buf<128x896xi8, ocm>
  npu.matmul %x, %w scales(%s[128 * %n : 128x1]) -> %q[128 * %n : 1x128] {format = "s8", transpose_b}
      : !npu.buf<1x896xf32, ocm>, !npu.buf<128x896xi8, ocm>, !npu.buf<896x1xf16, ocm>, !npu.buf<1x896xf32, ocm>
}
```

A view `%b[OFFSET : SIZES : STRIDES]` addresses elements `OFFSET + Σ i_d * STRIDES[d]` of the
buffer read as a flat row-major array; `SIZES` default to the buffer's shape and `STRIDES`
to the row-major strides of `SIZES`. Operands broadcast like numpy (stride 0 repeats).
Execution semantics (shared by the interpreter and the simulator): `axc.npu_semantics`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, cast

from xdsl.dialects.builtin import (
    ArrayAttr,
    FloatAttr,
    IndexType,
    IntAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
    i64,
)
from xdsl.ir import (
    Attribute,
    Block,
    BlockArgument,
    Data,
    Dialect,
    ParametrizedAttribute,
    Region,
    SSAValue,
    TypeAttribute,
)
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser, Parser, UnresolvedOperand
from xdsl.printer import Printer
from xdsl.traits import NoTerminator
from xdsl.utils.exceptions import VerifyException

from axc.dialects.tfm import RopeAttr
from axc.isa import WEIGHT_FORMATS
from axc.kernels import ACTIVATIONS

OCM = "ocm"
DDR = "ddr"
SPACES = (OCM, DDR)

OCM_CAPACITY_ATTR = "npu.ocm_capacity"
"""Module: the OCM bytes per core `tile` planned for (i64)."""
OCM_BYTES_ATTR = "npu.ocm_bytes"
"""Function: the OCM bytes `allocate-ocm` placed it in (i64)."""
FIT_LEVEL_ATTR = "npu.fit_level"
"""Function: which of `tile`'s fit attempts (`passes.tile.LEVELS`, 0 first) it needed (i64)."""
SCHEDULES_ATTR = "npu.schedules"
"""Function: `tile`'s decisions, one dictionary per scheduled op in program order: `kind`
(`linear`, `gated_mlp`, `attention`, `rows`), the source `op`, its `tiles` and loop `order`,
where its operands live (`in`, `out`) and the DDR bytes the schedule moves (`ddr_bytes`)."""


def element_bits(element: Attribute) -> int:
    bits = getattr(element, "bitwidth", None)
    if not isinstance(bits, int):
        raise VerifyException(f"element type {element} has no fixed bit width")
    return bits


def row_major(sizes: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(sizes):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def show_dims(dims: Sequence[int]) -> str:
    return "x".join(map(str, dims))


@irdl_attr_definition
class BufferType(ParametrizedAttribute, TypeAttribute):
    """A buffer in OCM or DDR: `!npu.buf<128x896xi8, ocm>`. Sizes count elements."""

    name = "npu.buf"

    shape: ArrayAttr[IntAttr]
    element_type: Attribute
    space: StringAttr

    def __init__(self, shape: Sequence[int], element_type: Attribute, space: str = OCM):
        super().__init__(ArrayAttr([IntAttr(d) for d in shape]), element_type, StringAttr(space))

    def get_shape(self) -> tuple[int, ...]:
        return tuple(d.data for d in self.shape.data)

    def get_element_type(self) -> Attribute:
        return self.element_type

    @property
    def numel(self) -> int:
        return math.prod(self.get_shape())

    @property
    def nbytes(self) -> int:
        return (self.numel * element_bits(self.element_type) + 7) // 8

    @property
    def on_chip(self) -> bool:
        return self.space.data == OCM

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            shape, element = parser.parse_ranked_shape()
            parser.parse_punctuation(",")
            space = parser.parse_identifier(" (ocm or ddr)")
        return (ArrayAttr([IntAttr(d) for d in shape]), element, StringAttr(space))

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_string(show_dims(self.get_shape()) + "x" if self.shape.data else "")
            printer.print_attribute(self.element_type)
            printer.print_string(f", {self.space.data}")

    def verify(self) -> None:
        if self.space.data not in SPACES:
            raise VerifyException(f"buffer space must be ocm or ddr, got {self.space.data}")
        if any(d.data <= 0 for d in self.shape.data):
            raise VerifyException(f"buffer dims must be positive, got {show_dims(self.get_shape())}")
        element_bits(self.element_type)


def ddr_shape(value: SSAValue) -> tuple[int, ...]:
    """Shape of any value a DMA can address: a buffer or a DDR tensor."""
    type_ = value.type
    if isinstance(type_, BufferType):
        return type_.get_shape()
    assert isinstance(type_, TensorType)
    return tuple(type_.get_shape())


def dims_of(value: SSAValue) -> tuple[int, ...]:
    """The shape of a buffer or tensor value."""
    type_ = value.type
    assert isinstance(type_, (BufferType, TensorType))
    return tuple(type_.get_shape())


def element_of(value: SSAValue) -> Attribute:
    type_ = value.type
    assert isinstance(type_, (BufferType, TensorType))
    return type_.get_element_type()


def space_of(value: SSAValue) -> str:
    type_ = value.type
    return type_.space.data if isinstance(type_, BufferType) else DDR


# --- views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Affine:
    """`const + Σ coeff * iv` over induction variables (SSA block arguments of npu.loop)."""

    const: int = 0
    terms: tuple[tuple[SSAValue, int], ...] = ()

    @staticmethod
    def of(value: Affine | int | SSAValue) -> Affine:
        if isinstance(value, Affine):
            return value
        if isinstance(value, SSAValue):
            return Affine(0, ((value, 1),))
        return Affine(int(value))

    def __add__(self, other: Affine | int | SSAValue) -> Affine:
        other = Affine.of(other)
        coeffs = dict(self.terms)
        for iv, c in other.terms:
            coeffs[iv] = coeffs.get(iv, 0) + c
        return Affine(self.const + other.const, tuple((iv, c) for iv, c in coeffs.items() if c))

    __radd__ = __add__

    def __mul__(self, k: int) -> Affine:
        return Affine(self.const * k, tuple((iv, c * k) for iv, c in self.terms if c * k))

    __rmul__ = __mul__

    def __floordiv__(self, k: int) -> Affine:
        """Exact division (every coefficient must be a multiple of `k`)."""
        assert self.const % k == 0 and all(c % k == 0 for _, c in self.terms), (self, k)
        return Affine(self.const // k, tuple((iv, c // k) for iv, c in self.terms))


@dataclass(frozen=True)
class Access:
    """A strided view of a buffer or DDR tensor, as builders write it."""

    value: SSAValue
    offset: Affine = field(default_factory=Affine)
    sizes: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None

    def resolved(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        sizes = self.sizes if self.sizes is not None else ddr_shape(self.value)
        return tuple(sizes), tuple(self.strides if self.strides is not None else row_major(sizes))


@irdl_attr_definition
class ViewAttr(Data[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]):
    """(offset coefficients `[const, c_iv0, ...]`, sizes, strides) of one operand view.

    The coefficients pair with the op's `ivs` operands in order.
    """

    name = "npu.view"

    @property
    def coeffs(self) -> tuple[int, ...]:
        return self.data[0]

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.data[1]

    @property
    def strides(self) -> tuple[int, ...]:
        return self.data[2]

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        with parser.in_angle_brackets():
            coeffs = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_integer)
            parser.parse_punctuation(":")
            sizes = parser.parse_dimension_list()
            parser.parse_punctuation(":")
            strides = parser.parse_dimension_list()
        return tuple(coeffs), tuple(sizes), tuple(strides)

    def print_parameter(self, printer: Printer) -> None:
        coeffs, sizes, strides = self.data
        printer.print_string(f"<[{', '.join(map(str, coeffs))}] : {show_dims(sizes)} : {show_dims(strides)}>")

    def verify(self) -> None:
        coeffs, sizes, strides = self.data
        if not coeffs or len(sizes) != len(strides) or not sizes:
            raise VerifyException("a view needs an offset, and as many strides as sizes")


def loop_bounds(iv: SSAValue) -> range:
    """The values an induction variable takes."""
    owner = iv.owner if isinstance(iv.owner, Block) else None
    loop = owner.parent_op() if owner is not None else None
    if not isinstance(loop, LoopOp):
        raise VerifyException("view offsets may only use npu.loop induction variables")
    return loop.iterations()


def view_extent(view: ViewAttr, ivs: Sequence[SSAValue]) -> tuple[int, int]:
    """Smallest and largest element index the view touches over all loop iterations."""
    low = high = view.coeffs[0]
    for coeff, iv in zip(view.coeffs[1:], ivs, strict=True):
        values = loop_bounds(iv)
        if not values:
            continue
        ends = (coeff * values[0], coeff * values[-1])
        low, high = low + min(ends), high + max(ends)
    for size, stride in zip(view.sizes, view.strides):
        high += (size - 1) * stride
    return low, high


# --- ops with strided operands -------------------------------------------------------


class AccessOp(IRDLOperation):
    """An op whose buffer operands are strided views (see the module docstring).

    Operands are `INS` (positional), `OPTS` (optional, written `name(%v[...])`), `OUTS`
    (after `->`, written in place) and the induction variables the offsets use.
    """

    INS: ClassVar[tuple[str, ...]] = ()
    OPTS: ClassVar[tuple[str, ...]] = ()
    OUTS: ClassVar[tuple[str, ...]] = ()
    ENGINE: ClassVar[str] = "vector"

    views = prop_def(ArrayAttr[ViewAttr])
    irdl_options = (AttrSizedOperandSegments(as_property=True),)

    # -- construction --

    @classmethod
    def make(
        cls,
        accesses: Mapping[str, Access | SSAValue | None],
        properties: Mapping[str, Attribute] | None = None,
    ) -> AccessOp:
        """Build from named accesses (a bare value means the whole buffer)."""
        present: list[Access] = []
        operands: list[SSAValue | list[SSAValue]] = []
        for name in (*cls.INS, *cls.OPTS, *cls.OUTS):
            access = accesses.get(name)
            if access is None:
                if name not in cls.OPTS:
                    raise ValueError(f"{cls.name} needs operand {name}")
                operands.append([])
                continue
            if isinstance(access, SSAValue):
                access = Access(access)
            present.append(access)
            operands.append([access.value] if name in cls.OPTS else access.value)
        ivs: list[SSAValue] = []
        for access in present:
            for iv, _ in access.offset.terms:
                if iv not in ivs:
                    ivs.append(iv)
        views = []
        for access in present:
            sizes, strides = access.resolved()
            coeffs = dict(access.offset.terms)
            views.append(
                ViewAttr(((access.offset.const, *(coeffs.get(iv, 0) for iv in ivs)), sizes, strides))
            )
        operands.append(ivs)
        return cls.build(
            operands=operands,
            properties={"views": ArrayAttr(views), **(properties or {})},
        )

    # -- access --

    def operand_names(self) -> list[str]:
        return [n for n in (*self.INS, *self.OPTS, *self.OUTS) if getattr(self, n) is not None]

    def accesses(self) -> Iterator[tuple[str, SSAValue, ViewAttr]]:
        names = self.operand_names()
        for name, view in zip(names, self.views.data, strict=True):
            yield name, getattr(self, name), view

    def view_of(self, name: str) -> ViewAttr:
        for n, _, view in self.accesses():
            if n == name:
                return view
        raise KeyError(name)

    def is_output(self, name: str) -> bool:
        return name in self.OUTS

    # -- verification --

    def fail(self, message: str) -> VerifyException:
        return VerifyException(f"'{self.name}' op {message}")

    def verify_(self) -> None:
        names = self.operand_names()
        if len(names) != len(self.views.data):
            raise self.fail(f"has {len(names)} buffer operands but {len(self.views.data)} views")
        ivs = tuple(self.ivs)  # type: ignore[attr-defined]  # the concrete op classes declare ivs
        for name, value, view in self.accesses():
            if len(view.coeffs) != 1 + len(ivs):
                raise self.fail(f"view of {name} has {len(view.coeffs) - 1} iv coefficients for {len(ivs)} ivs")
            if not isinstance(value.type, (BufferType, TensorType)):
                raise self.fail(f"operand {name} must be a buffer or a DDR tensor")
            if self.is_output(name) and not isinstance(value.type, BufferType):
                raise self.fail(f"output {name} must be a buffer")
            numel = math.prod(ddr_shape(value))
            try:
                low, high = view_extent(view, ivs)
            except VerifyException as error:
                raise self.fail(f"view of {name}: {error}") from None
            if low < 0 or high >= numel:
                raise self.fail(
                    f"view of {name} reaches elements [{low}, {high}] outside its {numel} elements"
                )
        self.verify_shapes({name: view.sizes for name, _, view in self.accesses()})

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        """Op-specific checks of the view sizes (broadcasting elementwise by default)."""
        out = sizes[self.OUTS[0]]
        for name in (*self.INS, *self.OPTS):
            if name in sizes and not broadcasts(sizes[name], out):
                raise self.fail(
                    f"{name} view {show_dims(sizes[name])} does not broadcast to {show_dims(out)}"
                )

    # -- syntax --

    def print(self, printer: Printer) -> None:
        views = dict((n, v) for n, _, v in self.accesses())
        ivs = tuple(self.ivs)  # type: ignore[attr-defined]  # the concrete op classes declare ivs

        def access(name: str) -> None:
            value = getattr(self, name)
            printer.print_operand(value)
            print_view(printer, views[name], ivs, ddr_shape(value))

        first = True
        for name in self.INS:
            printer.print_string(" " if first else ", ")
            access(name)
            first = False
        for name in self.OPTS:
            if getattr(self, name) is not None:
                printer.print_string(f" {name}(")
                access(name)
                printer.print_string(")")
        printer.print_string(" -> ")
        for index, name in enumerate(self.OUTS):
            if index:
                printer.print_string(", ")
            access(name)
        defs = type(self).get_irdl_definition().properties
        shown = {
            k: v
            for k, v in self.properties.items()
            if k not in ("views", "operandSegmentSizes")
            and not (k in defs and defs[k].default_value == v)
        }
        printer.print_op_attributes({**shown, **self.attributes})
        printer.print_string(" : ")
        printer.print_list(
            (getattr(self, n).type for n in self.operand_names()), printer.print_attribute
        )

    @classmethod
    def parse(cls, parser: Parser) -> AccessOp:
        ivs: list[UnresolvedOperand] = []
        parsed: dict[str, ParsedAccess] = {}
        for index, name in enumerate(cls.INS):
            if index:
                parser.parse_punctuation(",")
            parsed[name] = parse_access(parser)
        while (keyword := parser.parse_optional_keyword_in(cls.OPTS)) is not None:
            parser.parse_punctuation("(")
            parsed[keyword] = parse_access(parser)
            parser.parse_punctuation(")")
        parser.parse_punctuation("->")
        for index, name in enumerate(cls.OUTS):
            if index:
                parser.parse_punctuation(",")
            parsed[name] = parse_access(parser)
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        names = [n for n in (*cls.INS, *cls.OPTS, *cls.OUTS) if n in parsed]
        types = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_type)
        if len(types) != len(names):
            parser.raise_error(f"expected {len(names)} operand types, got {len(types)}")
        index_type = IndexType()
        iv_names: list[str] = []
        for _, (_, (terms, _, _)) in parsed.items():
            for _, iv in terms:
                if iv is not None and iv.operand_name not in iv_names:
                    iv_names.append(iv.operand_name)
                    ivs.append(iv)
        operands: list[SSAValue | list[SSAValue]] = []
        views: list[ViewAttr] = []
        for name, type_ in zip(names, types):
            unresolved, (terms, sizes, strides) = parsed[name]
            value = parser.resolve_operand(unresolved, type_)
            coeffs = [0] * (1 + len(ivs))
            for coeff, iv in terms:
                coeffs[0 if iv is None else 1 + iv_names.index(iv.operand_name)] += coeff
            shape = sizes if sizes is not None else list(ddr_shape(value))
            views.append(ViewAttr((tuple(coeffs), tuple(shape), tuple(strides if strides is not None else row_major(shape)))))
        types_by_name = dict(zip(names, types))
        for name in (*cls.INS, *cls.OPTS, *cls.OUTS):
            if name not in parsed:
                operands.append([])
                continue
            value = parser.resolve_operand(parsed[name][0], types_by_name[name])
            operands.append([value] if name in cls.OPTS else value)
        operands.append([parser.resolve_operand(iv, index_type) for iv in ivs])
        props = {k: v for k, v in attrs.items() if k in cls.get_irdl_definition().properties}
        others = {k: v for k, v in attrs.items() if k not in props}
        op = cls.build(operands=operands, properties={"views": ArrayAttr(views), **props}, attributes=others)
        return op


ParsedAccess = tuple[
    UnresolvedOperand, tuple[list[tuple[int, UnresolvedOperand | None]], list[int] | None, list[int] | None]
]
"""A parsed `%v[terms : sizes : strides]`: the value, (coefficient, iv) terms, sizes, strides."""


def parse_access(parser: Parser) -> ParsedAccess:
    """`%v` or `%v[affine (: sizes (: strides)?)?]`."""
    value = parser.parse_unresolved_operand()
    terms: list[tuple[int, UnresolvedOperand | None]] = []
    sizes = strides = None
    if parser.parse_optional_punctuation("[") is not None:
        while True:
            coeff = parser.parse_optional_integer(allow_negative=True)
            iv = None
            if coeff is None:
                coeff, iv = 1, parser.parse_unresolved_operand()
            elif parser.parse_optional_punctuation("*") is not None:
                iv = parser.parse_unresolved_operand()
            terms.append((coeff, iv))
            if parser.parse_optional_punctuation("+") is None:
                break
        if parser.parse_optional_punctuation(":") is not None:
            sizes = parser.parse_dimension_list()
            if parser.parse_optional_punctuation(":") is not None:
                strides = parser.parse_dimension_list()
        parser.parse_punctuation("]")
    return value, (terms, sizes, strides)


def print_view(printer: Printer, view: ViewAttr, ivs: Sequence[SSAValue], shape: Sequence[int]) -> None:
    """`[128 * %n + 64 : 1x128 : 896x1]`, leaving out what equals the defaults."""
    coeffs, sizes, strides = view.data
    contiguous = strides == row_major(sizes)
    whole = tuple(sizes) == tuple(shape)
    if not any(coeffs) and whole and contiguous:
        return
    printer.print_string("[")
    first = True
    for coeff, iv in zip(coeffs[1:], ivs):
        if not coeff:
            continue
        printer.print_string(("" if first else " + ") + (f"{coeff} * " if coeff != 1 else ""))
        printer.print_ssa_value(iv)
        first = False
    if coeffs[0] or first:
        printer.print_string(("" if first else " + ") + str(coeffs[0]))
    if not whole or not contiguous:
        printer.print_string(f" : {show_dims(sizes)}")
        if not contiguous:
            printer.print_string(f" : {show_dims(strides)}")
    printer.print_string("]")


def broadcasts(source: Sequence[int], target: Sequence[int]) -> bool:
    if len(source) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(source), reversed(target)))


def float_prop(value: float) -> FloatAttr:
    return FloatAttr(value, f64)


def int_prop(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


# --- memory and data movement --------------------------------------------------------


@irdl_op_definition
class AllocOp(IRDLOperation):
    """A buffer; `allocate-ocm` fills `offset` (bytes from the start of OCM).

    `%t = npu.alloc {alignment = 32 : i64, offset = 4096 : i64} : !npu.buf<128x896xi8, ocm>`
    """

    name = "npu.alloc"
    result = result_def(BufferType)
    alignment = prop_def(IntegerAttr, default_value=int_prop(32))
    offset = opt_prop_def(IntegerAttr)

    assembly_format = "attr-dict `:` type($result)"
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, type_: BufferType, alignment: int = 32, name: str | None = None):
        super().__init__(result_types=[type_], properties={"alignment": int_prop(alignment)})
        if name:
            self.result.name_hint = name

    @property
    def buffer_type(self) -> BufferType:
        return self.result.type

    def verify_(self) -> None:
        align = self.alignment.value.data
        if align <= 0 or align & (align - 1):
            raise VerifyException(f"'npu.alloc' op alignment {align} must be a power of two")
        if self.offset is not None:
            if not self.buffer_type.on_chip:
                raise VerifyException("'npu.alloc' op only OCM buffers have offsets")
            if self.offset.value.data % align:
                raise VerifyException(
                    f"'npu.alloc' op offset {self.offset.value.data} is not aligned to {align}"
                )


class DmaOp(AccessOp):
    ENGINE: ClassVar = "dma"
    src = operand_def()
    dst = operand_def(BufferType)
    ivs = var_operand_def(IndexType)
    event = opt_prop_def(IntegerAttr)
    INS: ClassVar = ("src",)
    OUTS: ClassVar = ("dst",)
    SRC_SPACE: ClassVar[str]
    DST_SPACE: ClassVar[str]

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        if space_of(self.src) != self.SRC_SPACE or space_of(self.dst) != self.DST_SPACE:
            raise self.fail(f"moves {self.SRC_SPACE} to {self.DST_SPACE}")
        if element_of(self.src) != element_of(self.dst):
            raise self.fail("source and destination element types differ (DMA does not convert)")
        if math.prod(sizes["src"]) != math.prod(sizes["dst"]):
            raise self.fail(
                f"moves {show_dims(sizes['src'])} into {show_dims(sizes['dst'])} (element counts differ)"
            )


@irdl_op_definition
class DmaLoadOp(DmaOp):
    """DDR → OCM copy of a strided box (asynchronous when it carries an `event`).

    `npu.dma_load %K_cache[64 + 128 * %t + 64 * %h : 64x64 : 128x1] -> %k : tensor<1x1023x128xbf16>, !npu.buf<64x64xbf16, ocm>`
    """

    name = "npu.dma_load"
    SRC_SPACE: ClassVar = DDR
    DST_SPACE: ClassVar = OCM


@irdl_op_definition
class DmaStoreOp(DmaOp):
    """OCM → DDR copy of a strided box.

    `npu.dma_store %y -> %out : !npu.buf<1x896xbf16, ocm>, !npu.buf<1x1x896xbf16, ddr>`
    """

    name = "npu.dma_store"
    SRC_SPACE: ClassVar = OCM
    DST_SPACE: ClassVar = DDR


@irdl_op_definition
class ToTensorOp(IRDLOperation):
    """A DDR buffer returned as a function result.

    `%r = npu.to_tensor %out : !npu.buf<1x1x896xbf16, ddr> -> tensor<1x1x896xbf16>`
    """

    name = "npu.to_tensor"
    buffer = operand_def(BufferType)
    result = result_def(TensorType)
    assembly_format = "$buffer attr-dict `:` type($buffer) `->` type($result)"

    def verify_(self) -> None:
        type_ = cast(BufferType, self.buffer.type)
        result = cast(TensorType, self.result.type)
        if type_.on_chip or type_.get_shape() != tuple(result.get_shape()) or type_.element_type != result.get_element_type():
            raise VerifyException("'npu.to_tensor' op needs a DDR buffer of the result's shape and type")


@irdl_op_definition
class BarrierOp(IRDLOperation):
    """Wait until the DMAs tagged with `events` (all outstanding DMAs if none) completed.

    `npu.barrier {events = [0 : i64]}`
    """

    name = "npu.barrier"
    events = opt_prop_def(ArrayAttr[IntegerAttr])
    assembly_format = "attr-dict"
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, events: Sequence[int] | None = None):
        props = {"events": ArrayAttr([int_prop(e) for e in events])} if events is not None else {}
        super().__init__(properties=props)

    def event_ids(self) -> tuple[int, ...] | None:
        return None if self.events is None else tuple(e.value.data for e in self.events.data)


# --- matrix engine -------------------------------------------------------------------


@irdl_op_definition
class MatmulOp(AccessOp):
    """`out (+)= alpha * lhs @ rhs (+ bias)` (rhs `[N, K]` with `transpose_b`), in fp32.

    Leading dims broadcast as batch dims. A quantized rhs (`format` s8, s4 packed two per
    byte along K with the low nibble first, fp8) is dequantized exactly as
    `(q - zeros) * scales` with one scale per `group` inputs (0: per output channel).

    `npu.matmul %x, %w scales(%s) -> %y[128 * %n : 1x128] {format = "s8", transpose_b} : ...`
    """

    name = "npu.matmul"
    ENGINE: ClassVar = "matrix"
    lhs = operand_def(BufferType)
    rhs = operand_def(BufferType)
    scales = opt_operand_def(BufferType)
    zeros = opt_operand_def(BufferType)
    bias = opt_operand_def(BufferType)
    out = operand_def(BufferType)
    ivs = var_operand_def(IndexType)
    format = prop_def(StringAttr, default_value=StringAttr("float"))
    group = prop_def(IntegerAttr, default_value=int_prop(0))
    alpha = prop_def(FloatAttr, default_value=float_prop(1.0))
    transpose_b = opt_prop_def(UnitAttr)
    accumulate = opt_prop_def(UnitAttr)
    INS: ClassVar = ("lhs", "rhs")
    OPTS: ClassVar = ("scales", "zeros", "bias")
    OUTS: ClassVar = ("out",)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        fmt = self.format.data
        if fmt not in WEIGHT_FORMATS:
            raise self.fail(f"unknown format {fmt} (known: {', '.join(WEIGHT_FORMATS)})")
        if (fmt == "float") != (self.scales is None):
            raise self.fail("quantized formats need scales, float needs none")
        if self.zeros is not None and fmt not in ("s8", "s4"):
            raise self.fail("only integer formats have zero points")
        lhs, rhs, out = sizes["lhs"], sizes["rhs"], sizes["out"]
        if min(len(lhs), len(rhs), len(out)) < 2:
            raise self.fail("operands must be at least 2-D")
        m, k = lhs[-2:]
        if self.transpose_b is not None:
            n, k_b = rhs[-2:]
        else:
            k_b, n = rhs[-2:]
        if fmt == "s4":
            k_b *= 2
        if k != k_b:
            raise self.fail(f"contracts {show_dims(lhs)} with {show_dims(rhs)}: K {k} != {k_b}")
        if out[-2:] != (m, n):
            raise self.fail(f"result view {show_dims(out)} is not [..., {m}, {n}]")
        if "bias" in sizes and not broadcasts(sizes["bias"], out):
            raise self.fail(f"bias view {show_dims(sizes['bias'])} does not broadcast to {show_dims(out)}")
        for name in ("lhs", "rhs"):
            if not broadcasts(sizes[name][:-2], out[:-2]):
                raise self.fail(f"{name} batch dims do not broadcast to the result's")
        if self.scales is not None:
            group = self.group.value.data
            groups = 1 if group == 0 else -(-k // group)
            if self.transpose_b is None:
                raise self.fail("quantized weights are [N, K] tiles: use transpose_b")
            for name in ("scales", "zeros"):
                if name in sizes and sizes[name][-2:] != (n, groups):
                    raise self.fail(f"{name} view {show_dims(sizes[name])} is not [{n}, {groups}]")


# --- vector engine -------------------------------------------------------------------


class VectorOp(AccessOp):
    ivs = var_operand_def(IndexType)


class UnaryOp(VectorOp):
    input = operand_def()
    out = operand_def(BufferType)
    INS: ClassVar = ("input",)
    OUTS: ClassVar = ("out",)


class BinaryOp(VectorOp):
    lhs = operand_def(BufferType)
    rhs = operand_def(BufferType)
    out = operand_def(BufferType)
    INS: ClassVar = ("lhs", "rhs")
    OUTS: ClassVar = ("out",)


@irdl_op_definition
class FillOp(VectorOp):
    """Set every element of a view: `npu.fill -> %m {value = -3.4e+38 : f64} : ...`."""

    name = "npu.fill"
    out = operand_def(BufferType)
    value = prop_def(FloatAttr)
    OUTS: ClassVar = ("out",)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        pass


@irdl_op_definition
class CastOp(UnaryOp):
    """Copy with conversion (round to nearest even): `npu.cast %x -> %y : ...`."""

    name = "npu.cast"


@irdl_op_definition
class ActOp(UnaryOp):
    """Elementwise activation: `npu.act %g -> %a {kind = "silu"} : ...`."""

    name = "npu.act"
    kind = prop_def(StringAttr)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        if self.kind.data not in ACTIVATIONS:
            raise self.fail(f"unknown activation {self.kind.data}")
        super().verify_shapes(sizes)


@irdl_op_definition
class SoftcapOp(UnaryOp):
    """`out = tanh(x / cap) * cap`: `npu.softcap %s -> %s {cap = 50.0 : f64} : ...`."""

    name = "npu.softcap"
    cap = prop_def(FloatAttr)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        if self.cap.value.data <= 0:
            raise self.fail(f"cap {self.cap.value.data} must be positive")
        super().verify_shapes(sizes)


@irdl_op_definition
class IotaOp(VectorOp):
    """`out[i] = i` over a 1-D view (key positions of a KV cache):
    `npu.iota -> %p : !npu.buf<24xi32, ocm>`."""

    name = "npu.iota"
    out = operand_def(BufferType)
    OUTS: ClassVar = ("out",)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        if len(sizes["out"]) != 1:
            raise self.fail(f"numbers 1-D views, got {show_dims(sizes['out'])}")


@irdl_op_definition
class WindowMaskOp(VectorOp):
    """Sliding-window masking of score rows `[..., R, C]`: adds the runtime's mask value
    where `query_positions[r] - key_positions[c] >= window`.

    `npu.window_mask %s, %qp, %kp -> %s {window = 4 : i64} : ...`
    """

    name = "npu.window_mask"
    scores = operand_def(BufferType)
    query_positions = operand_def(BufferType)
    key_positions = operand_def(BufferType)
    out = operand_def(BufferType)
    window = prop_def(IntegerAttr)
    INS: ClassVar = ("scores", "query_positions", "key_positions")
    OUTS: ClassVar = ("out",)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        scores, out = sizes["scores"], sizes["out"]
        if self.window.value.data <= 0:
            raise self.fail(f"window {self.window.value.data} must be positive")
        if len(scores) < 2 or out != scores:
            raise self.fail(f"masks [..., R, C] score views in place, got {show_dims(scores)} -> {show_dims(out)}")
        for name, expected in (("query_positions", scores[-2]), ("key_positions", scores[-1])):
            if sizes[name] != (expected,):
                raise self.fail(f"{name} view {show_dims(sizes[name])} is not [{expected}]")


@irdl_op_definition
class AddOp(BinaryOp):
    """`out = lhs + rhs` (broadcasting)."""

    name = "npu.add"


@irdl_op_definition
class MulOp(BinaryOp):
    """`out = lhs * rhs` (broadcasting)."""

    name = "npu.mul"


@irdl_op_definition
class DivOp(BinaryOp):
    """`out = lhs / rhs` (broadcasting; attention's final normalisation)."""

    name = "npu.div"


@irdl_op_definition
class ActMulOp(VectorOp):
    """Fused gated activation `out = act(gate) * up`: `npu.act_mul %g, %u -> %y {kind = "silu"}`."""

    name = "npu.act_mul"
    gate = operand_def(BufferType)
    up = operand_def(BufferType)
    out = operand_def(BufferType)
    kind = prop_def(StringAttr)
    INS: ClassVar = ("gate", "up")
    OUTS: ClassVar = ("out",)


class NormOp(VectorOp):
    eps = prop_def(FloatAttr)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        x, out = sizes["input" if "input" in sizes else "lhs"], sizes["out"]
        if x != out:
            raise self.fail(f"normalises {show_dims(x)} into {show_dims(out)}")
        for name in ("weight", "bias"):
            if name in sizes and sizes[name] != (x[-1],):
                raise self.fail(f"{name} view {show_dims(sizes[name])} is not [{x[-1]}]")


@irdl_op_definition
class RMSNormOp(NormOp):
    """`out = x * rsqrt(mean(x², -1) + eps) * weight`: `npu.rms_norm %x, %w -> %h {eps = 1e-06}`."""

    name = "npu.rms_norm"
    input = operand_def()
    weight = operand_def(BufferType)
    out = operand_def(BufferType)
    INS: ClassVar = ("input", "weight")
    OUTS: ClassVar = ("out",)


@irdl_op_definition
class AddRMSNormOp(NormOp):
    """Fused residual add and norm: `sum = lhs + rhs; out = rms_norm(sum, weight)`.

    `npu.add_rms_norm %x, %o, %w -> %r, %h {eps = 1e-06} : ...`
    """

    name = "npu.add_rms_norm"
    lhs = operand_def(BufferType)
    rhs = operand_def(BufferType)
    weight = operand_def(BufferType)
    sum = operand_def(BufferType)
    out = operand_def(BufferType)
    INS: ClassVar = ("lhs", "rhs", "weight")
    OUTS: ClassVar = ("sum", "out")

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        super().verify_shapes(sizes)
        if not (sizes["lhs"] == sizes["rhs"] == sizes["sum"]):
            raise self.fail("lhs, rhs and sum views must have one shape")


@irdl_op_definition
class HeadNormOp(NormOp):
    """RMSNorm of each `head_dim` slice of rows `[T, heads*head_dim]` with one `[head_dim]`
    weight (Qwen3/HunYuan q/k norms): `npu.head_norm %q, %w -> %q {head_dim = 128, eps = 1e-06}`."""

    name = "npu.head_norm"
    input = operand_def(BufferType)
    weight = operand_def(BufferType)
    out = operand_def(BufferType)
    head_dim = prop_def(IntegerAttr)
    INS: ClassVar = ("input", "weight")
    OUTS: ClassVar = ("out",)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        x, out, head_dim = sizes["input"], sizes["out"], self.head_dim.value.data
        if len(x) != 2 or head_dim <= 0 or x[1] % head_dim or out != x:
            raise self.fail(f"normalises [T, heads*{head_dim}] views, got {show_dims(x)} -> {show_dims(out)}")
        if sizes["weight"] != (head_dim,):
            raise self.fail(f"weight view {show_dims(sizes['weight'])} is not [{head_dim}]")


@irdl_op_definition
class LayerNormOp(NormOp):
    """`out = (x - mean) * rsqrt(var + eps) * weight (+ bias)` over the last dim."""

    name = "npu.layer_norm"
    input = operand_def()
    weight = operand_def(BufferType)
    bias = opt_operand_def(BufferType)
    out = operand_def(BufferType)
    INS: ClassVar = ("input", "weight")
    OPTS: ClassVar = ("bias",)
    OUTS: ClassVar = ("out",)


@irdl_op_definition
class RopeOp(VectorOp):
    """Rotary embedding (rotate-half or interleaved) of rows `[T, heads*head_dim]` at positions `[T]`;
    `longrope` reads its frequency divisors from `ext_factors [rotary_dim / 2]`.

    `npu.rope %q, %pos -> %q {num_heads = 14, head_dim = 64, rope = #tfm.rope<rotary_dim = 64, theta = 1000000.0>}`
    """

    name = "npu.rope"
    input = operand_def(BufferType)
    positions = operand_def(BufferType)
    ext_factors = opt_operand_def(BufferType)
    out = operand_def(BufferType)
    num_heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    rope = prop_def(RopeAttr)
    INS: ClassVar = ("input", "positions")
    OPTS: ClassVar = ("ext_factors",)
    OUTS: ClassVar = ("out",)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        self.rope.verify()  # parsed attributes are not verified on their own
        x, pos, out = sizes["input"], sizes["positions"], sizes["out"]
        spec = self.rope.spec(self.head_dim.value.data)
        if spec.needs_ext_factors != ("ext_factors" in sizes):
            raise self.fail("longrope needs the ext_factors operand, and only longrope takes one")
        if "ext_factors" in sizes and sizes["ext_factors"] != (spec.rotary_dim // 2,):
            raise self.fail(f"ext_factors view {show_dims(sizes['ext_factors'])} is not [{spec.rotary_dim // 2}]")
        width = self.num_heads.value.data * self.head_dim.value.data
        if len(x) != 2 or x[1] != width or out != x:
            raise self.fail(f"rotates [T, {width}] views, got {show_dims(x)} -> {show_dims(out)}")
        if pos != (x[0],):
            raise self.fail(f"positions view {show_dims(pos)} is not [{x[0]}]")


@irdl_op_definition
class OnlineSoftmaxOp(VectorOp):
    """One step of online softmax over score rows `[..., R, C]` with running state.

    Updates `max [..., R, 1]` and `sum [..., R, 1]` in place, writes `probs =
    exp(scores - new_max)` and `corr = exp(old_max - new_max)`, by which the caller
    rescales its accumulator: `npu.online_softmax %s -> %s, %m, %l, %c : ...`.
    """

    name = "npu.online_softmax"
    scores = operand_def(BufferType)
    probs = operand_def(BufferType)
    max = operand_def(BufferType)
    sum = operand_def(BufferType)
    corr = operand_def(BufferType)
    INS: ClassVar = ("scores",)
    OUTS: ClassVar = ("probs", "max", "sum", "corr")

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        scores = sizes["scores"]
        if sizes["probs"] != scores:
            raise self.fail("probs must have the scores' shape")
        for name in ("max", "sum", "corr"):
            if sizes[name] != (*scores[:-1], 1):
                raise self.fail(f"{name} view {show_dims(sizes[name])} is not [{show_dims((*scores[:-1], 1))}]")


@irdl_op_definition
class GatherOp(VectorOp):
    """`out[..., j] = input[..., indices[j]]` (GPTQ act-order inputs).

    `npu.gather %x, %perm -> %xp : !npu.buf<1x896xf32, ocm>, !npu.buf<896xi32, ocm>, !npu.buf<1x896xf32, ocm>`
    """

    name = "npu.gather"
    input = operand_def(BufferType)
    indices = operand_def(BufferType)
    out = operand_def(BufferType)
    INS: ClassVar = ("input", "indices")
    OUTS: ClassVar = ("out",)

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        x, idx, out = sizes["input"], sizes["indices"], sizes["out"]
        if len(idx) != 1 or out != (*x[:-1], idx[0]):
            raise self.fail(f"gathers {show_dims(idx)} columns of {show_dims(x)} into {show_dims(out)}")


@irdl_op_definition
class TopKOp(VectorOp):
    """Softmax probabilities and indices of the `k` largest entries of each row."""

    name = "npu.topk"
    input = operand_def(BufferType)
    values = operand_def(BufferType)
    indices = operand_def(BufferType)
    k = prop_def(IntegerAttr)
    INS: ClassVar = ("input",)
    OUTS: ClassVar = ("values", "indices")

    def verify_shapes(self, sizes: dict[str, tuple[int, ...]]) -> None:
        x, k = sizes["input"], self.k.value.data
        for name in ("values", "indices"):
            if sizes[name] != (*x[:-1], k):
                raise self.fail(f"{name} view {show_dims(sizes[name])} is not [{show_dims((*x[:-1], k))}]")


# --- control -------------------------------------------------------------------------


@irdl_op_definition
class LoopOp(IRDLOperation):
    """Repeat the body for `%i` in `range(lb, ub, step)` (static bounds).

    ```mlir
    npu.loop %n = 0 to 38 {
      npu.dma_load %w[114688 * %n : 128x896] -> %t : tensor<4864x896xi8>, !npu.buf<128x896xi8, ocm>
    }
    ```
    """

    name = "npu.loop"
    lb = prop_def(IntegerAttr)
    ub = prop_def(IntegerAttr)
    step = prop_def(IntegerAttr, default_value=int_prop(1))
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    def __init__(self, lb: int, ub: int, step: int = 1, body: Region | None = None):
        if body is None:
            body = Region(Block(arg_types=[IndexType()]))
        super().__init__(
            properties={"lb": int_prop(lb), "ub": int_prop(ub), "step": int_prop(step)},
            regions=[body],
        )

    @property
    def iv(self) -> BlockArgument:
        return self.body.block.args[0]

    def iterations(self) -> range:
        return range(self.lb.value.data, self.ub.value.data, self.step.value.data)

    def verify_(self) -> None:
        block = self.body.block
        if len(block.args) != 1 or not isinstance(block.args[0].type, IndexType):
            raise VerifyException("'npu.loop' op body takes one index argument")
        if self.step.value.data <= 0:
            raise VerifyException("'npu.loop' op step must be positive")

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_block_argument(self.iv, print_type=False)
        printer.print_string(f" = {self.lb.value.data} to {self.ub.value.data}")
        if self.step.value.data != 1:
            printer.print_string(f" step {self.step.value.data}")
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False, print_empty_block=True)
        printer.print_op_attributes(self.attributes)

    @classmethod
    def parse(cls, parser: Parser) -> LoopOp:
        iv = parser.parse_argument(expect_type=False)
        parser.parse_punctuation("=")
        lb = parser.parse_integer()
        parser.parse_keyword("to")
        ub = parser.parse_integer()
        step = parser.parse_integer() if parser.parse_optional_keyword("step") else 1
        body = parser.parse_region((iv.resolve(IndexType()),))
        op = cls(lb, ub, step, body)
        op.attributes |= parser.parse_optional_attr_dict()
        return op


ACCESS_OPS: tuple[type[AccessOp], ...] = (
    DmaLoadOp,
    DmaStoreOp,
    MatmulOp,
    FillOp,
    CastOp,
    ActOp,
    SoftcapOp,
    AddOp,
    MulOp,
    DivOp,
    ActMulOp,
    RMSNormOp,
    AddRMSNormOp,
    HeadNormOp,
    LayerNormOp,
    RopeOp,
    OnlineSoftmaxOp,
    GatherOp,
    TopKOp,
    IotaOp,
    WindowMaskOp,
)

NPU = Dialect(
    "npu",
    [AllocOp, ToTensorOp, BarrierOp, LoopOp, *ACCESS_OPS],
    [BufferType, ViewAttr],
)
