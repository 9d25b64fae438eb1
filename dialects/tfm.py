"""The `tfm` dialect: the transformer level of the pipeline.

Ops work on whole tensors; token and cache dimensions may be dynamic (`?`) until
`specialize-groups` fixes them per shape group. Weights arrive as `axc.param` values.

```mlir
%h = tfm.rms_norm %x, %w {eps = 1.0e-06 : f64} : (tensor<1x?x896xbf16>, tensor<896xbf16>) -> tensor<1x?x896xbf16>
%q = tfm.linear %h, %wq, %bq : (tensor<1x?x896xbf16>, tensor<896x896xbf16>, tensor<896xbf16>) -> tensor<1x?x896xbf16>
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    TensorType,
    f64,
    i1,
    i64,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from axc.kernels import ACTIVATIONS, RopeSpec


def tensor_type(value: SSAValue | Attribute) -> TensorType:
    """The type of a value that the verifiers make a tensor (SSA types are `Attribute`)."""
    type_ = value.type if isinstance(value, SSAValue) else value
    assert isinstance(type_, TensorType)
    return type_


def shape_of(value: SSAValue | Attribute) -> tuple[int, ...]:
    """The static shape of a tensor value or type; dynamic dims are `DYNAMIC_INDEX`."""
    return tuple(tensor_type(value).get_shape())


def dims_match(a: int, b: int) -> bool:
    return a == b or a == DYNAMIC_INDEX or b == DYNAMIC_INDEX


def shapes_match(a: Sequence[int], b: Sequence[int]) -> bool:
    return len(a) == len(b) and all(dims_match(x, y) for x, y in zip(a, b))


def show(shape: Sequence[int]) -> str:
    return "x".join("?" if d == DYNAMIC_INDEX else str(d) for d in shape)


def float_prop(value: float) -> FloatAttr:
    return FloatAttr(value, f64)


def int_prop(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


ROPE_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RopeSpec) if f.name != "head_dim"}
"""The parameters of `#tfm.rope`: `kernels.RopeSpec`'s fields but `head_dim` (the op's)."""
ROPE_SHOWN = ("rotary_dim", "theta")
"""Printed even at their defaults."""


@irdl_attr_definition
class RopeAttr(ParametrizedAttribute):
    """RoPE's parameters as one attribute, for `tfm.rope` and `npu.rope`:
    `#tfm.rope<rotary_dim = 64, theta = 1000000.0, scaling = "llama3", factor = 8.0>`,
    `#tfm.rope<rotary_dim = 32, theta = 10000.0, interleaved = true>`.

    Its fields are `kernels.RopeSpec`'s (but `head_dim`); fields at their defaults are left
    out of the text. `spec(head_dim)` gives the `RopeSpec` the kernels compute with; the
    ops check that an `ext_factors` operand is there exactly when it `needs_ext_factors`
    (`scaling = "longrope"`)
    """

    name = "tfm.rope"

    fields: DictionaryAttr

    def __init__(self, fields: DictionaryAttr):
        super().__init__(fields)

    @classmethod
    def of(cls, spec: RopeSpec) -> RopeAttr:
        values = spec.values()
        return cls(DictionaryAttr({name: _rope_value(values[name]) for name in ROPE_FIELDS}))

    def value(self, name: str) -> int | float | str | bool:
        attr = self.fields.data[name]
        if isinstance(attr, IntegerAttr) and attr.type == i1:
            return bool(attr.value.data)
        return attr.data if isinstance(attr, StringAttr) else attr.value.data  # type: ignore[attr-defined]  # IntegerAttr or FloatAttr here (verify checks the kinds)

    def spec(self, head_dim: int) -> RopeSpec:
        return RopeSpec.from_values({"head_dim": head_dim, **{name: self.value(name) for name in self.fields.data}})

    def verify(self) -> None:
        for name, attr in self.fields.data.items():
            field = ROPE_FIELDS.get(name)
            if field is None:
                raise VerifyException(f"#tfm.rope has no parameter '{name}' (it has: {', '.join(ROPE_FIELDS)})")
            expected = {"int": IntegerAttr, "float": FloatAttr, "str": StringAttr, "bool": IntegerAttr}[str(field.type)]
            if not isinstance(attr, expected) or (isinstance(attr, IntegerAttr) and (attr.type == i1) != (field.type == "bool")):
                raise VerifyException(f"#tfm.rope parameter {name} must be a{'n' if field.type == 'int' else ''} {field.type}")
            choices = field.metadata.get("choices")
            if choices and isinstance(attr, StringAttr) and attr.data not in choices:
                raise VerifyException(f"unknown {name} '{attr.data}' (supported: {', '.join(choices)})")
        missing = [name for name, f in ROPE_FIELDS.items() if f.default is dataclasses.MISSING and name not in self.fields.data]
        if missing:
            raise VerifyException(f"#tfm.rope lacks {', '.join(missing)}")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values: dict[str, Attribute] = {}

        def entry() -> None:
            name = parser.parse_identifier(" for a #tfm.rope parameter")
            parser.parse_punctuation("=")
            text = parser.parse_optional_str_literal()
            flag = parser.parse_optional_boolean() if text is None else None
            if text is not None:
                values[name] = StringAttr(text)
            else:
                values[name] = _rope_value(flag if flag is not None else parser.parse_number())

        parser.parse_comma_separated_list(parser.Delimiter.ANGLE, entry)
        return (DictionaryAttr(values),)

    def print_parameters(self, printer: Printer) -> None:
        defaults = {name: f.default for name, f in ROPE_FIELDS.items()}
        shown = [
            (name, self.value(name))
            for name in ROPE_FIELDS
            if name in self.fields.data and (name in ROPE_SHOWN or self.value(name) != defaults[name])
        ]
        with printer.in_angle_brackets():
            printer.print_list(shown, lambda item: _print_rope_entry(printer, *item))


def _rope_value(value: int | float | str | bool) -> Attribute:
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, bool):
        return IntegerAttr.from_bool(value)
    return FloatAttr(float(value), f64) if isinstance(value, float) else IntegerAttr(value, i64)


def _print_rope_entry(printer: Printer, name: str, value: int | float | str | bool) -> None:
    printer.print_string(f"{name} = ")
    if isinstance(value, str):
        printer.print_string_literal(value)
    elif isinstance(value, bool):
        printer.print_string("true" if value else "false")
    else:
        text = repr(value)
        if isinstance(value, float) and "." not in text and "e" in text:
            text = text.replace("e", ".0e")  # MLIR float literals need a point: 1e-06 -> 1.0e-06
        printer.print_string(text)


class TfmOp(IRDLOperation):
    """Common syntax: operands, properties in the attribute dictionary, functional type."""

    assembly_format = "operands attr-dict `:` functional-type(operands, results)"
    irdl_options = (ParsePropInAttrDict(),)
    traits = traits_def(Pure())

    def fail(self, message: str) -> VerifyException:
        return VerifyException(f"'{self.name}' op {message}")

    def inferred_shape(self) -> tuple[int, ...]:
        """The result shape implied by the operands (same as the first operand by default)."""
        return shape_of(self.operands[0])

    def expect_shape(self, what: str, actual: Sequence[int], expected: Sequence[int]) -> None:
        if not shapes_match(actual, expected):
            raise self.fail(
                f"{what} has shape {show(actual)}, expected {show(expected)}"
            )


@irdl_op_definition
class EmbeddingOp(TfmOp):
    """Row gather: `ids [1, T]` × `table [vocab, hidden]` → `[1, T, hidden]`."""

    name = "tfm.embedding"
    ids = operand_def(TensorType)
    table = operand_def(TensorType)
    result = result_def(TensorType)

    def __init__(self, ids: SSAValue, table: SSAValue, result_type: TensorType):
        super().__init__(operands=[ids, table], result_types=[result_type])

    def inferred_shape(self) -> tuple[int, ...]:
        return (*shape_of(self.ids), shape_of(self.table)[1])

    def verify_(self) -> None:
        ids, table = shape_of(self.ids), shape_of(self.table)
        if not isinstance(tensor_type(self.ids).get_element_type(), IntegerType):
            raise self.fail("ids must be integers")
        if len(table) != 2:
            raise self.fail(f"table must be 2-D, got {show(table)}")
        self.expect_shape("result", shape_of(self.result), (*ids, table[1]))


@irdl_op_definition
class RMSNormOp(TfmOp):
    """`x * rsqrt(mean(x², -1) + eps) * weight` over the last dimension."""

    name = "tfm.rms_norm"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    eps = prop_def(FloatAttr)

    def __init__(self, input: SSAValue, weight: SSAValue, eps: float):
        super().__init__(
            operands=[input, weight],
            result_types=[input.type],
            properties={"eps": float_prop(eps)},
        )

    def verify_(self) -> None:
        x = shape_of(self.input)
        self.expect_shape("weight", shape_of(self.weight), (x[-1],))
        self.expect_shape("result", shape_of(self.result), x)
        if self.eps.value.data <= 0:
            raise self.fail("eps must be positive")


@irdl_op_definition
class HeadNormOp(TfmOp):
    """RMSNorm of each `head_dim`-sized head of `[1, T, heads*head_dim]` with one shared
    `weight [head_dim]`: Qwen3's and HunYuan's q/k norms.

    `%qn = tfm.head_norm %q, %w {head_dim = 128 : i64, eps = 1.0e-06 : f64} : (tensor<1x?x2048xf32>, tensor<128xbf16>) -> tensor<1x?x2048xf32>`
    """

    name = "tfm.head_norm"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    head_dim = prop_def(IntegerAttr)
    eps = prop_def(FloatAttr)

    def __init__(self, input: SSAValue, weight: SSAValue, head_dim: int, eps: float):
        super().__init__(
            operands=[input, weight],
            result_types=[input.type],
            properties={"head_dim": int_prop(head_dim), "eps": float_prop(eps)},
        )

    def verify_(self) -> None:
        x, head_dim = shape_of(self.input), self.head_dim.value.data
        if head_dim <= 0:
            raise self.fail(f"head_dim {head_dim} must be positive")
        if len(x) != 3 or (x[2] != DYNAMIC_INDEX and x[2] % head_dim):
            raise self.fail(f"input {show(x)} is not [1, tokens, heads*{head_dim}]")
        self.expect_shape("weight", shape_of(self.weight), (head_dim,))
        self.expect_shape("result", shape_of(self.result), x)
        if self.eps.value.data <= 0:
            raise self.fail("eps must be positive")


@irdl_op_definition
class LayerNormOp(TfmOp):
    """`(x - mean) * rsqrt(var + eps) * weight (+ bias)` over the last dimension."""

    name = "tfm.layer_norm"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)
    eps = prop_def(FloatAttr)

    def verify_(self) -> None:
        x = shape_of(self.input)
        self.expect_shape("weight", shape_of(self.weight), (x[-1],))
        if self.bias is not None:
            self.expect_shape("bias", shape_of(self.bias), (x[-1],))
        self.expect_shape("result", shape_of(self.result), x)


@irdl_op_definition
class LinearOp(TfmOp):
    """`x @ weight.T (+ bias)` with `weight [out, in]` as Hugging Face stores it."""

    name = "tfm.linear"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    result = result_def(TensorType)

    def __init__(
        self,
        input: SSAValue,
        weight: SSAValue,
        bias: SSAValue | None,
        result_type: TensorType,
    ):
        super().__init__(
            operands=[input, weight, [bias] if bias is not None else []],
            result_types=[result_type],
        )

    def inferred_shape(self) -> tuple[int, ...]:
        return (*shape_of(self.input)[:-1], shape_of(self.weight)[0])

    def verify_(self) -> None:
        x, w = shape_of(self.input), shape_of(self.weight)
        if len(w) != 2:
            raise self.fail(f"weight must be 2-D [out, in], got {show(w)}")
        if not dims_match(x[-1], w[1]):
            raise self.fail(
                f"input has {x[-1]} features but weight {show(w)} expects {w[1]}"
            )
        if self.bias is not None:
            self.expect_shape("bias", shape_of(self.bias), (w[0],))
        self.expect_shape("result", shape_of(self.result), (*x[:-1], w[0]))


@irdl_op_definition
class RopeOp(TfmOp):
    """Rotary position embedding (rotate-half form) of `[1, T, heads*head_dim]`.

    The first `rotary_dim` features of each head rotate; `scaling` adjusts the
    frequencies (`linear`: positions / factor; `llama3`: the Llama 3.1 band rule;
    `longrope`: each frequency divided by its entry of the `ext_factors [rotary_dim / 2]`
    operand, cos and sin times `mscale`):

    `tfm.rope %q, %pos, %ext {num_heads = 2 : i64, head_dim = 8 : i64, rope = #tfm.rope<rotary_dim = 8, theta = 10000.0, scaling = "longrope", mscale = 1.19>}`
    """

    name = "tfm.rope"
    input = operand_def(TensorType)
    positions = operand_def(TensorType)
    ext_factors = opt_operand_def(TensorType)
    result = result_def(TensorType)
    num_heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    rope = prop_def(RopeAttr)

    def verify_(self) -> None:
        self.rope.verify()  # parsed attributes are not verified on their own
        x, pos = shape_of(self.input), shape_of(self.positions)
        heads, head_dim = self.num_heads.value.data, self.head_dim.value.data
        spec = self.rope.spec(head_dim)
        rotary = spec.rotary_dim
        if len(x) != 3 or not dims_match(x[2], heads * head_dim):
            raise self.fail(
                f"input {show(x)} is not [1, tokens, num_heads*head_dim = {heads * head_dim}]"
            )
        if len(pos) != 2 or not dims_match(pos[1], x[1]):
            raise self.fail(f"positions {show(pos)} do not match {x[1]} tokens")
        if rotary <= 0 or rotary > head_dim or rotary % 2:
            raise self.fail(f"rotary_dim {rotary} must be even and in (0, {head_dim}]")
        if spec.needs_ext_factors != (self.ext_factors is not None):
            raise self.fail("longrope needs the ext_factors operand, and only longrope takes one")
        if self.ext_factors is not None:
            self.expect_shape("ext_factors", shape_of(self.ext_factors), (rotary // 2,))
        if spec.mscale <= 0:
            raise self.fail(f"mscale {spec.mscale} must be positive")
        self.expect_shape("result", shape_of(self.result), x)


@irdl_op_definition
class AttentionOp(TfmOp):
    """Grouped-query attention over `concat(cache, new)` keys with an additive mask.

    `q [1, T, H*d]`, `k`/`v [1, T, Hkv*d]`, `k_cache`/`v_cache [1, S, Hkv*d]`,
    `mask [1, T, S+T]` → `[1, T, H*d]`. Without the two cache operands the keys are the
    new rows alone (a history-0 prefill group) and the mask is `[1, T, T]`:

    ```mlir
    %a = tfm.attention %q, %k, %v, %mask {...} : (tensor<1x8x64xf32>, tensor<1x8x32xf32>,
        tensor<1x8x32xf32>, tensor<1x8x8xf32>) -> tensor<1x8x64xf32>
    ```

    `softcap > 0` caps the scaled scores with `tanh(s / softcap) * softcap` before the
    mask. `sliding_window > 0` also hides keys `sliding_window` or more positions behind
    their query, from the `positions [1, T]` of the new rows (the operand before the mask;
    cache row `j` holds position `j`), so the window holds whatever mask the runtime sends:

    `tfm.attention %q, %k, %v, %kc, %vc, %pos, %m {..., softcap = 50.0 : f64, sliding_window = 4 : i64}`
    """

    name = "tfm.attention"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    context = var_operand_def(TensorType)
    """The K and V caches (none in a history-0 group), then the positions of a window."""
    mask = operand_def(TensorType)
    result = result_def(TensorType)
    num_heads = prop_def(IntegerAttr)
    num_kv_heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    scale = prop_def(FloatAttr)
    softcap = prop_def(FloatAttr, default_value=float_prop(0.0))
    sliding_window = prop_def(IntegerAttr, default_value=int_prop(0))

    @property
    def caches(self) -> tuple[SSAValue, ...]:
        return tuple(self.context[: len(self.context) - (1 if self.sliding_window.value.data else 0)])

    @property
    def positions(self) -> SSAValue | None:
        return self.context[-1] if self.sliding_window.value.data and self.context else None

    @property
    def key_cache(self) -> SSAValue | None:
        return self.caches[0] if self.caches else None

    @property
    def value_cache(self) -> SSAValue | None:
        return self.caches[1] if self.caches else None

    def verify_(self) -> None:
        heads, kv_heads = self.num_heads.value.data, self.num_kv_heads.value.data
        head_dim = self.head_dim.value.data
        if heads <= 0 or kv_heads <= 0 or heads % kv_heads:
            raise self.fail(
                f"num_heads {heads} must be a positive multiple of num_kv_heads {kv_heads}"
            )
        if self.softcap.value.data < 0:
            raise self.fail(f"softcap {self.softcap.value.data} must be positive (0: none)")
        window = self.sliding_window.value.data
        if window < 0:
            raise self.fail(f"sliding_window {window} must be positive (0: none)")
        if window and len(self.context) not in (1, 3):
            raise self.fail("a sliding_window needs the positions operand (before the mask)")
        if len(self.caches) not in (0, 2):
            raise self.fail(f"takes a key and a value cache or none, got {len(self.caches)} cache operands")
        q = shape_of(self.query)
        tokens = q[1] if len(q) == 3 else DYNAMIC_INDEX
        self.expect_shape("query", q, (1, tokens, heads * head_dim))
        for what, value in (("key", self.key), ("value", self.value)):
            self.expect_shape(what, shape_of(value), (1, tokens, kv_heads * head_dim))
        history = 0
        if self.caches:
            cache = shape_of(self.caches[0])
            self.expect_shape("key_cache", cache, (1, DYNAMIC_INDEX, kv_heads * head_dim))
            self.expect_shape("value_cache", shape_of(self.caches[1]), cache)
            history = cache[1]
        total = (
            history + tokens
            if DYNAMIC_INDEX not in (history, tokens)
            else DYNAMIC_INDEX
        )
        self.expect_shape("mask", shape_of(self.mask), (1, tokens, total))
        if self.positions is not None:
            self.expect_shape("positions", shape_of(self.positions), (1, tokens))
        self.expect_shape("result", shape_of(self.result), q)


@irdl_op_definition
class ActOp(TfmOp):
    """Elementwise activation: silu, gelu (erf), gelu_tanh or relu."""

    name = "tfm.act"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    kind = prop_def(StringAttr)

    def verify_(self) -> None:
        if self.kind.data not in ACTIVATIONS:
            raise self.fail(
                f"unknown activation '{self.kind.data}' (supported: {', '.join(ACTIVATIONS)})"
            )
        self.expect_shape("result", shape_of(self.result), shape_of(self.input))


@irdl_op_definition
class SoftcapOp(TfmOp):
    """`tanh(x / cap) * cap` elementwise (Gemma2's final logits):
    `tfm.softcap %l {cap = 30.0 : f64} : (tensor<1x1x256xf32>) -> tensor<1x1x256xf32>`."""

    name = "tfm.softcap"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    cap = prop_def(FloatAttr)

    def verify_(self) -> None:
        if self.cap.value.data <= 0:
            raise self.fail(f"cap {self.cap.value.data} must be positive")
        self.expect_shape("result", shape_of(self.result), shape_of(self.input))


class BinaryOp(TfmOp):
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)

    def __init__(self, lhs: SSAValue, rhs: SSAValue):
        super().__init__(operands=[lhs, rhs], result_types=[lhs.type])

    def verify_(self) -> None:
        lhs = shape_of(self.lhs)
        self.expect_shape("rhs", shape_of(self.rhs), lhs)
        self.expect_shape("result", shape_of(self.result), lhs)


@irdl_op_definition
class AddOp(BinaryOp):
    """Elementwise sum (residual connections)."""

    name = "tfm.add"


@irdl_op_definition
class MulOp(BinaryOp):
    """Elementwise product (gated MLP)."""

    name = "tfm.mul"


@irdl_op_definition
class CastOp(TfmOp):
    """Change the element type (round to nearest even when narrowing)."""

    name = "tfm.cast"
    input = operand_def(TensorType)
    result = result_def(TensorType)

    def verify_(self) -> None:
        self.expect_shape("result", shape_of(self.result), shape_of(self.input))


@irdl_op_definition
class TopKOp(TfmOp):
    """The `k` largest entries of the last dimension: softmax probabilities and indices."""

    name = "tfm.topk"
    input = operand_def(TensorType)
    values = result_def(TensorType)
    indices = result_def(TensorType)
    k = prop_def(IntegerAttr)

    def inferred_shape(self) -> tuple[int, ...]:
        return (*shape_of(self.input)[:-1], self.k.value.data)

    def verify_(self) -> None:
        x, k = shape_of(self.input), self.k.value.data
        if k <= 0 or not dims_match(x[-1], max(k, x[-1])):
            raise self.fail(f"k = {k} must be in [1, {x[-1]}]")
        for what, value in (("values", self.values), ("indices", self.indices)):
            self.expect_shape(what, shape_of(value), (*x[:-1], k))


TFM = Dialect(
    "tfm",
    [
        EmbeddingOp,
        RMSNormOp,
        HeadNormOp,
        LayerNormOp,
        LinearOp,
        RopeOp,
        AttentionOp,
        ActOp,
        SoftcapOp,
        AddOp,
        MulOp,
        CastOp,
        TopKOp,
    ],
    [RopeAttr],
)
