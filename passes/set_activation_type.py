"""`set-activation-type`: hidden states, KV rows and activations stored in `hidden` dtype.

After `specialize-groups` the layer groups take and return bf16 hidden states and KV rows
and keep fp32 between ops. This pass stores all of them as `hidden` (fp16, bf16 or fp32):
the float arguments and results of the layer groups and `@post` (the mask stays bf16: its
-65536 does not fit fp16) and every float result between ops. Ops still accumulate in fp32
inside; casts that became no-ops disappear; the logits of `@post` stay fp32. The module is
marked `axc.activation_type`, so the interpreters round every stored float to its type.
With `compute` the results between ops take that type instead (fp32 for families that
need it: only the boundary is then `hidden`, through the casts `specialize-groups` made).

```mlir
func.func @layer_0_g0(%K_cache: tensor<1x31x8xbf16>, ..., %input: tensor<1x1x16xbf16>, %mask: tensor<1x1x32xbf16>) -> (...) {
  %input_1 = tfm.cast %input : (tensor<1x1x16xbf16>) -> tensor<1x1x16xf32>
  %1 = tfm.rms_norm %input_1, %0 {eps = 1.0e-06 : f64} : (tensor<1x1x16xf32>, tensor<16xbf16>) -> tensor<1x1x16xf32>
// set-activation-type{hidden=fp16}
func.func @layer_0_g0(%K_cache: tensor<1x31x8xf16>, ..., %input: tensor<1x1x16xf16>, %mask: tensor<1x1x32xbf16>) -> (...) {
  %1 = tfm.rms_norm %input, %0 {eps = 1.0e-06 : f64} : (tensor<1x1x16xf16>, tensor<16xbf16>) -> tensor<1x1x16xf16>
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import AnyFloat, ArrayAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Attribute, BlockArgument, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from axc.dialects import quant, tfm
from axc.dialects.axc import GROUP_ATTR, HISTORIES_ATTR, INPUT_NAMES_ATTR, POST
from axc.dialects.quant import ACTIVATION_TYPE_ATTR
from axc.dtypes import FLOAT_TYPES
from axc.errors import AxcError
from axc.ir_utils import enclosing_function
from axc.runtime_contract import MASK

HIDDEN_TYPES = ("fp16", "bf16", "fp32")
KEPT_INPUTS = (MASK,)
"""Float inputs of the runtime contract that are not activations."""


def is_target(function: func.FuncOp | None) -> bool:
    """Layer groups made by `specialize-groups`, and `@post`."""
    return function is not None and (GROUP_ATTR in function.attributes or function.sym_name.data == POST)


def retyped(type_: Attribute, hidden: Attribute) -> TensorType | None:
    """`type_` with element type `hidden`, when it is a float tensor of another type."""
    if not isinstance(type_, TensorType) or not isinstance(type_.element_type, AnyFloat):
        return None
    return None if type_.element_type == hidden else TensorType(hidden, type_.get_shape())


def is_kept_input(value: SSAValue) -> bool:
    if not isinstance(value, BlockArgument):
        return False
    names = value.block.parent_op().attributes.get(INPUT_NAMES_ATTR)  # type: ignore[union-attr]  # a function's block argument always has a parent op
    return (
        isinstance(names, ArrayAttr)
        and value.index < len(names.data)
        and isinstance(name := names.data[value.index], StringAttr)
        and name.data in KEPT_INPUTS
    )


@dataclass
class RetypeArguments(RewritePattern):
    """Float arguments of layer groups and `@post` (not the mask) become `hidden`."""

    hidden: Attribute

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.FuncOp, rewriter: PatternRewriter) -> None:
        if not is_target(op):
            return
        for arg in op.args:
            if not is_kept_input(arg) and (new := retyped(arg.type, self.hidden)) is not None:
                rewriter.replace_value_with_new_type(arg, new)


@dataclass
class RetypeActivation(RewritePattern):
    """Float results between ops become `compute`, the returned ones `hidden` (not the
    mask's cast, not the returned logits)."""

    hidden: Attribute
    compute: Attribute

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, tfm.TfmOp) or isinstance(op, quant.DequantOp):
            return
        function = enclosing_function(op)
        if not is_target(function) or (isinstance(op, tfm.CastOp) and is_kept_input(op.input)):
            return
        assert function is not None
        for result in op.results:
            returned = any(isinstance(use.operation, func.ReturnOp) for use in result.uses)
            if returned and function.sym_name.data == POST:
                continue
            if (new := retyped(result.type, self.hidden if returned else self.compute)) is not None:
                rewriter.replace_value_with_new_type(result, new)


class FoldCast(RewritePattern):
    """A `tfm.cast` to its own input type is its input."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tfm.CastOp, rewriter: PatternRewriter) -> None:
        if op.input.type == op.result.type:
            rewriter.replace(op, [], [op.input])


class SyncFunctionType(RewritePattern):
    """The function type follows its arguments and returned values."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.FuncOp, rewriter: PatternRewriter) -> None:
        ret = op.body.block.last_op
        if not isinstance(ret, func.ReturnOp):
            return
        wanted = func.FunctionType.from_lists([a.type for a in op.args], [v.type for v in ret.operands])
        if op.function_type != wanted:
            op.function_type = wanted
            rewriter.notify_op_modified(op)


@dataclass(frozen=True)
class SetActivationType(ModulePass):
    """Store activations as `hidden` (fp16, bf16 or fp32); refuse types `chip` cannot compute."""

    name: ClassVar[str] = "set-activation-type"

    hidden: str = "bf16"
    compute: str | None = None
    """The type between ops, where it differs from `hidden` (the boundary's)."""
    chip: str | None = None

    def __post_init__(self) -> None:
        for option, value in (("hidden", self.hidden), ("compute", self.compute or self.hidden)):
            if value not in HIDDEN_TYPES:
                raise AxcError(
                    f"unknown {option} type '{value}' for set-activation-type; use one of {', '.join(HIDDEN_TYPES)}"
                )

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if HISTORIES_ATTR not in op.attributes:
            raise AxcError("set-activation-type works on layer groups; run specialize-groups first")
        if self.chip is not None:
            from axc.targets import check_activation_type, get_target

            for option, value in (("hidden", self.hidden), ("compute", self.compute or self.hidden)):
                check_activation_type(get_target(self.chip), value, "hidden states" if option == "hidden" else "activations", option)
        hidden = FLOAT_TYPES[self.hidden]
        compute = FLOAT_TYPES[self.compute or self.hidden]
        patterns = [RetypeArguments(hidden), RetypeActivation(hidden, compute), FoldCast(), SyncFunctionType()]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)
        op.attributes[ACTIVATION_TYPE_ATTR] = StringAttr(self.hidden)
