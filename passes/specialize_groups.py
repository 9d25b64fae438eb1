"""`specialize-groups`: one function per shape group, with the runtime's I/O contract.

The vendor's ladder (`pulsar2 llm_build`, ax-llm's board log): each symbolic decoder-layer
function `@layer_i` becomes `@layer_i_g0` (decode: one token over `kv-cache-len` cached
rows), `@layer_i_g1` (a prefill chunk of `prefill-len` tokens with no history: its
`K_cache`/`V_cache` are a `[1, 1, hidden]` dummy that is never read, its mask `[1, P, P]`)
and `@layer_i_g<1+j>` for each `last-kv-cache-len` value h_j (a chunk over h_j cached rows,
mask `[1, P, h_j + P]`). The post function gets one token (logits stay fp32). Boundary
tensors take the runtime's dtypes (bf16, indices ui32) through `tfm.cast`:

```mlir
func.func @layer_0_g0(%K_cache: tensor<1x1023x128xbf16>, ..., %mask: tensor<1x1x1024xbf16>)
    -> (tensor<1x1x128xbf16>, tensor<1x1x128xbf16>, tensor<1x1x896xbf16>)
    attributes {axc.group = 0 : i64, axc.history = 1023 : i64, axc.tokens = 1 : i64, ...}
func.func @layer_0_g1(%K_cache: tensor<1x1x896xbf16>, ..., %mask: tensor<1x128x128xbf16>) ...
    attributes {axc.group = 1 : i64, axc.history = 0 : i64, axc.tokens = 128 : i64, ...}
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    bf16,
    f32,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from axc.dialects import tfm
from axc.dialects.axc import (
    GROUP_ATTR,
    HISTORIES_ATTR,
    HISTORY_ATTR,
    KV_CACHE_LEN_ATTR,
    LAYER_ATTR,
    POST,
    PREFILL_LEN_ATTR,
    TOKENS_ATTR,
)
from axc.errors import AxcError


@dataclass(frozen=True)
class ShapeGroup:
    """One shape group of a layer: `tokens` new rows over `history` cached rows."""

    index: int
    tokens: int
    history: int

    @property
    def kind(self) -> str:
        return "decode" if self.index == 0 else "prefill"


def shape_groups(
    kv_cache_len: int, prefill_len: int, last_kv_cache_len: tuple[int, ...]
) -> list[ShapeGroup]:
    """Decode, the history-0 prefill group, then one prefill group per `last_kv_cache_len`
    value whose history is that value (the vendor's ladder)."""
    if kv_cache_len <= 0:
        raise AxcError(f"kv-cache-len must be positive, got {kv_cache_len}")
    if prefill_len < 0 or prefill_len > kv_cache_len:
        raise AxcError(
            f"prefill-len {prefill_len} must be in [0, kv-cache-len = {kv_cache_len}]"
        )
    groups = [ShapeGroup(0, 1, kv_cache_len)]
    if prefill_len == 0:
        if last_kv_cache_len:
            raise AxcError("last-kv-cache-len needs a prefill-len > 0")
        return groups
    for previous, history in zip((0, *last_kv_cache_len), last_kv_cache_len):
        if history <= previous:
            raise AxcError(
                "last-kv-cache-len values must be strictly increasing and at least 1, "
                f"got {list(last_kv_cache_len)}"
            )
        if history + prefill_len > kv_cache_len:
            raise AxcError(
                f"last-kv-cache-len {history} + prefill-len {prefill_len} exceeds "
                f"kv-cache-len = {kv_cache_len}"
            )
    for index, history in enumerate((0, *last_kv_cache_len), start=1):
        groups.append(ShapeGroup(index, prefill_len, history))
    return groups


def boundary_type(type_: Attribute, shape: tuple[int, ...]) -> TensorType:
    """The runtime's dtype for a boundary tensor: floats are bf16, integers unchanged."""
    assert isinstance(type_, TensorType)
    element = type_.get_element_type()
    return TensorType(bf16 if element == f32 else element, shape)


def refine_shapes(function: func.FuncOp) -> None:
    """Recompute every tfm result type from its operands (static shapes flow down)."""
    for op in function.body.walk():
        if not isinstance(op, tfm.TfmOp):
            continue
        shape = op.inferred_shape()
        for result in op.results:
            type_ = result.type
            assert isinstance(type_, TensorType)
            if tuple(type_.get_shape()) != shape:
                Rewriter.replace_value_with_new_type(
                    result, TensorType(type_.get_element_type(), shape)
                )


def specialize(
    function: func.FuncOp,
    name: str,
    input_shapes: list[tuple[int, ...]],
    cast_outputs: bool = True,
    history_free: bool = False,
) -> func.FuncOp:
    """Clone `function` with static `input_shapes`, casting at the boundary."""
    clone = function.clone()
    clone.sym_name = StringAttr(name)
    if history_free:
        drop_history(clone)
    block = clone.body.block
    first = block.first_op
    assert first is not None
    for arg, shape in zip(tuple(block.args), input_shapes, strict=True):
        arg_type = arg.type
        assert isinstance(arg_type, TensorType)
        internal = TensorType(arg_type.get_element_type(), shape)
        external = boundary_type(arg_type, shape)
        new_arg = Rewriter.replace_value_with_new_type(arg, external)
        if external != internal and new_arg.uses:
            cast = tfm.CastOp.create(operands=[new_arg], result_types=[internal])
            new_arg.replace_uses_with_if(cast.results[0], lambda use: use.operation is not cast)  # noqa: B023 - called within this iteration
            Rewriter.insert_op(cast, InsertPoint.before(first))
    refine_shapes(clone)
    ret = block.last_op
    assert isinstance(ret, func.ReturnOp)
    outputs: list[SSAValue] = []
    for value in ret.operands:
        value_type = value.type
        assert isinstance(value_type, TensorType)
        target = boundary_type(value_type, tuple(value_type.get_shape()))
        if cast_outputs and target != value_type:
            cast = tfm.CastOp.create(operands=[value], result_types=[target])
            Rewriter.insert_op(cast, InsertPoint.before(ret))
            value = cast.results[0]
        outputs.append(value)
    ret.operands = outputs
    clone.function_type = func.FunctionType.from_lists(
        [a.type for a in block.args], [v.type for v in outputs]
    )
    return clone


def layer_input_shapes(function: func.FuncOp, group: ShapeGroup) -> list[tuple[int, ...]]:
    """K_cache, V_cache, indices, input, mask shapes of one group (a history-0 group's
    caches are the runtime's `[1, 1, hidden]` dummy)."""
    inputs = function.function_type.inputs.data
    kv_dim = tfm.shape_of(inputs[0])[-1]
    hidden = tfm.shape_of(inputs[3])[-1]
    t, s = group.tokens, group.history
    cache = (1, s, kv_dim) if s else (1, 1, hidden)
    return [cache, cache, (1, t), (1, t, hidden), (1, t, s + t)]


def drop_history(function: func.FuncOp) -> None:
    """Attention over the new rows alone: the cache inputs stay in the signature, unread."""
    cache_args = set(function.body.block.args[:2])
    for op in list(function.body.walk()):
        if isinstance(op, tfm.AttentionOp) and set(op.caches) <= cache_args and op.caches:
            replacement = tfm.AttentionOp.create(
                operands=[op.query, op.key, op.value, *([] if op.positions is None else [op.positions]), op.mask],
                result_types=[op.result.type],
                properties=dict(op.properties),
                attributes=dict(op.attributes),
            )
            Rewriter.replace_op(op, replacement)
    for arg in cache_args:
        if arg.uses:
            raise AxcError(
                f"@{function.sym_name.data}: the K/V cache is read outside attention; "
                "a history-0 group cannot be made"
            )


@dataclass(frozen=True)
class SpecializeGroups(ModulePass):
    """Make the decode group, the history-0 prefill group and one prefill group per
    `last-kv-cache-len` value (its history)."""

    name: ClassVar[str] = "specialize-groups"

    kv_cache_len: int = 127
    prefill_len: int = 0
    last_kv_cache_len: tuple[int, ...] = ()

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        groups = shape_groups(self.kv_cache_len, self.prefill_len, self.last_kv_cache_len)
        for function in list(op.ops):
            if not isinstance(function, func.FuncOp):
                continue
            replacements: list[Operation] = []
            if LAYER_ATTR in function.attributes:
                for group in groups:
                    clone = specialize(
                        function,
                        f"{function.sym_name.data}_g{group.index}",
                        layer_input_shapes(function, group),
                        history_free=group.kind == "prefill" and group.history == 0,
                    )
                    clone.attributes[GROUP_ATTR] = IntegerAttr(group.index, i64)
                    clone.attributes[TOKENS_ATTR] = IntegerAttr(group.tokens, i64)
                    clone.attributes[HISTORY_ATTR] = IntegerAttr(group.history, i64)
                    replacements.append(clone)
            elif function.sym_name.data == POST:
                hidden = tfm.shape_of(function.function_type.inputs.data[0])[-1]
                replacements.append(specialize(function, POST, [(1, 1, hidden)], cast_outputs=False))
            else:
                continue
            Rewriter.insert_op(replacements, InsertPoint.before(function))
            Rewriter.erase_op(function)
        op.attributes[KV_CACHE_LEN_ATTR] = IntegerAttr(self.kv_cache_len, i64)
        op.attributes[PREFILL_LEN_ATTR] = IntegerAttr(self.prefill_len, i64)
        op.attributes[HISTORIES_ATTR] = ArrayAttr(
            [IntegerAttr(g.history, i64) for g in groups]
        )
