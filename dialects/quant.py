"""The `quant` dialect: weights that carry their storage format.

`!quant.w<kind, OUTxIN, granularity, zero point, scale = T>` is a weight of logical shape
`[out, in]` (`in` is the reduction dimension) stored as `kind`:

```mlir
!quant.w<s8, 896x896, channel, sym, scale = f16>            // int8 codes, one scale per output row
!quant.w<s4, 4864x896, group = 128, asym, scale = f16>     // 4-bit codes, scales+zeros per 128 inputs
!quant.w<fp8_e4m3, 896x896, channel, scale = bf16>         // float8 codes, per-channel scales
!quant.w<bf16, 151936x896>                                  // plain, no scales
```

`quant.weight` materialises such a weight from named parameters (weights never live in
the IR text); `quant.linear` is `x @ W.T (+ bias)`; `quant.dequant` gives the fp32 tensor.

```mlir
%w = quant.weight <"axc"::"model.layers.0.mlp.up_proj.s4"> scales <"axc"::"model.layers.0.mlp.up_proj.s4.scales">
       zeros <"axc"::"model.layers.0.mlp.up_proj.s4.zeros"> : !quant.w<s4, 4864x896, group = 128, asym, scale = f16>
%y = quant.linear %x, %w : (tensor<1x?x896xf32>, !quant.w<s4, 4864x896, group = 128, asym, scale = f16>) -> tensor<1x?x4864xf32>
```

Storage layouts (what the NPU level will DMA), row-major `[out, in]`:

- s8: int8 codes. Scales `[out]` (channel) or `[out, ceil(in/group)]`; asym zeros int8, same shape.
- s4: uint8 `[out, ceil(in/2)]`, two codes per byte along `in`, low nibble = even index.
  sym: signed two's complement (-8..7); asym: unsigned 0..15 and uint8 zeros (0..15).
- fp8_e4m3 / fp8_e5m2: `ml_dtypes.float8_e4m3fn` / `float8_e5m2` codes, scales `[out]`.
- bf16 / fp16 / fp32: the plain weight, no scales.

`W[n, k] = scales[n, k // group] * (code[n, k] - zeros[n, k // group])`. An optional
`perm` parameter (int32 `[in]`) records that stored column `j` holds input `perm[j]`:
`quant.linear` gathers its input by `perm` first (GPTQ act-order, see `import-gptq`).
Details and the numpy (de)quantizers live in `axc.quantization`.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    IntAttr,
    NoneType,
    StringAttr,
    TensorType,
    bf16,
    f16,
    f32,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from axc.dialects.axc import ParamAttr
from axc.dialects.tfm import TfmOp, dims_match, shape_of, show
from axc.quantization import KINDS, WeightSpec

SCALE_TYPES: dict[str, Attribute] = {"f16": f16, "bf16": bf16, "f32": f32}
ACTIVATION_TYPE_ATTR = "axc.activation_type"
"""Module attribute set by `set-activation-type`: activations are stored in their element types."""


def scale_name(type_: Attribute) -> str:
    """`f16`/`bf16`/`f32` for a scale element type, "" for none."""
    if isinstance(type_, Float16Type):
        return "f16"
    if isinstance(type_, BFloat16Type):
        return "bf16"
    if isinstance(type_, Float32Type):
        return "f32"
    return ""


@irdl_attr_definition
class WeightType(ParametrizedAttribute, TypeAttribute):
    """A weight and its storage: `!quant.w<s4, 896x896, group = 128, asym, scale = f16>`."""

    name = "quant.w"

    kind: StringAttr
    out_features: IntAttr
    in_features: IntAttr
    group: IntAttr
    asym: IntAttr
    scale: Attribute

    @staticmethod
    def of(spec: WeightSpec) -> WeightType:
        scale = SCALE_TYPES[spec.scale_type] if spec.scale_type else NoneType()
        return WeightType(
            StringAttr(spec.kind),
            IntAttr(spec.out_features),
            IntAttr(spec.in_features),
            IntAttr(spec.group),
            IntAttr(int(spec.asym)),
            scale,
        )

    @property
    def spec(self) -> WeightSpec:
        return WeightSpec(
            kind=self.kind.data,
            out_features=self.out_features.data,
            in_features=self.in_features.data,
            group=self.group.data,
            asym=bool(self.asym.data),
            scale_type=scale_name(self.scale),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.out_features.data, self.in_features.data)

    def verify(self) -> None:
        if not isinstance(self.scale, NoneType) and not scale_name(self.scale):
            raise VerifyException(f"!quant.w: scale type {self.scale} is not one of f16, bf16, f32")
        if (problem := self.spec.problem()) is not None:
            raise VerifyException(f"!quant.w: {problem}")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            kind = parser.parse_identifier(" (the weight kind)")
            if kind not in KINDS:
                parser.raise_error(f"unknown weight kind '{kind}' (known: {', '.join(KINDS)})")
            parser.parse_punctuation(",")
            dims = parser.parse_dimension_list()
            if len(dims) != 2 or min(dims) < 0:
                parser.raise_error("expected the static weight shape OUTxIN")
            group, asym = 0, False
            scale: Attribute = NoneType()
            while parser.parse_optional_punctuation(","):
                key = parser.parse_keyword_in(("channel", "group", "sym", "asym", "scale"))
                if key in ("group", "scale"):
                    parser.parse_punctuation("=")
                if key == "group":
                    group = parser.parse_integer(allow_negative=False, allow_boolean=False)
                elif key == "scale":
                    scale = parser.parse_type()
                elif key in ("sym", "asym"):
                    asym = key == "asym"
        return (
            StringAttr(kind),
            IntAttr(dims[0]),
            IntAttr(dims[1]),
            IntAttr(group),
            IntAttr(int(asym)),
            scale,
        )

    def print_parameters(self, printer: Printer) -> None:
        spec = self.spec
        parts = [spec.kind, f"{spec.out_features}x{spec.in_features}"]
        if spec.quantized:
            parts.append(f"group = {spec.group}" if spec.group else "channel")
            if spec.kind not in ("fp8_e4m3", "fp8_e5m2"):
                parts.append("asym" if spec.asym else "sym")
        with printer.in_angle_brackets():
            printer.print_string(", ".join(parts))
            if not isinstance(self.scale, NoneType):
                printer.print_string(", scale = ")
                printer.print_attribute(self.scale)


@irdl_op_definition
class WeightOp(IRDLOperation):
    """Materialise a stored weight from its parameters (`data`, then `scales`, `zeros`, `perm`)."""

    name = "quant.weight"

    data = prop_def(ParamAttr)
    scales = opt_prop_def(ParamAttr)
    zeros = opt_prop_def(ParamAttr)
    perm = opt_prop_def(ParamAttr)
    result = result_def(WeightType)

    assembly_format = (
        "$data (`scales` $scales^)? (`zeros` $zeros^)? (`perm` $perm^)? attr-dict `:` type($result)"
    )
    traits = traits_def(Pure())

    def __init__(
        self,
        type_: WeightType,
        data: ParamAttr,
        scales: ParamAttr | None = None,
        zeros: ParamAttr | None = None,
        perm: ParamAttr | None = None,
    ):
        properties: dict[str, Attribute] = {"data": data}
        for role, param in (("scales", scales), ("zeros", zeros), ("perm", perm)):
            if param is not None:
                properties[role] = param
        super().__init__(properties=properties, result_types=[type_])

    @staticmethod
    def of(type_: WeightType, scope: str, keys: dict[str, str]) -> WeightOp:
        """A weight whose parameters by role (data, scales, zeros, perm) are keys of `scope`."""
        return WeightOp(type_, **{role: ParamAttr(scope, key) for role, key in keys.items()})

    @property
    def weight_type(self) -> WeightType:
        assert isinstance(self.result.type, WeightType)
        return self.result.type

    def fail(self, message: str) -> VerifyException:
        return VerifyException(f"'{self.name}' op {message}")

    def params(self) -> dict[str, ParamAttr]:
        """The parameters by role: data, scales, zeros, perm."""
        named = {"data": self.data, "scales": self.scales, "zeros": self.zeros, "perm": self.perm}
        return {role: param for role, param in named.items() if param is not None}

    def verify_(self) -> None:
        spec = self.weight_type.spec
        if spec.quantized != (self.scales is not None):
            raise self.fail(
                f"{spec.kind} weights {'need' if spec.quantized else 'take no'} scales"
            )
        if spec.asym != (self.zeros is not None):
            raise self.fail(
                f"{'asym weights need' if spec.asym else 'sym and plain weights take no'} zeros"
            )
        if self.perm is not None and spec.group == 0:
            raise self.fail("an input permutation needs group-wise scales")


@irdl_op_definition
class LinearOp(TfmOp):
    """`x @ W.T (+ bias)` with a stored weight; fp32 accumulation, result in its element type."""

    name = "quant.linear"

    input = operand_def(TensorType)
    weight = operand_def(WeightType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)

    def __init__(self, input: SSAValue, weight: SSAValue, bias: SSAValue | None, result_type: Attribute):
        super().__init__(
            operands=[input, weight, [bias] if bias is not None else []],
            result_types=[result_type],
        )

    @property
    def weight_type(self) -> WeightType:
        assert isinstance(self.weight.type, WeightType)
        return self.weight.type

    def inferred_shape(self) -> tuple[int, ...]:
        return (*shape_of(self.input)[:-1], self.weight_type.shape[0])

    def verify_(self) -> None:
        x = shape_of(self.input)
        out_features, in_features = self.weight_type.shape
        if not dims_match(x[-1], in_features):
            raise self.fail(f"input has {x[-1]} features but the weight expects {in_features}")
        if self.bias is not None:
            self.expect_shape("bias", shape_of(self.bias), (out_features,))
        self.expect_shape("result", shape_of(self.result), (*x[:-1], out_features))


@irdl_op_definition
class DequantOp(TfmOp):
    """The logical fp32 weight `[out, in]` of a stored weight."""

    name = "quant.dequant"

    weight = operand_def(WeightType)
    result = result_def(TensorType)

    def inferred_shape(self) -> tuple[int, ...]:
        assert isinstance(self.weight.type, WeightType)
        return self.weight.type.shape

    def verify_(self) -> None:
        shape = self.inferred_shape()
        if shape_of(self.result) != shape:
            raise self.fail(f"result has shape {show(shape_of(self.result))}, expected {show(shape)}")


QUANT = Dialect("quant", [WeightOp, LinearOp, DequantOp], [WeightType])
