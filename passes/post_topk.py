"""`post-topk{k=K}`: `@post` returns the top-K token ids and their probabilities.

The vendor's `--post_topk K` post model does the sampler's first step on the NPU: instead
of the `[1, 1, vocab]` logits it returns `indices` (int32, largest first, so index 0 is
the argmax) and `probs` (the softmax probabilities of those ids, fp32). `k=0` leaves the
logits alone.

```mlir
func.func @post(%input: tensor<1x1x16xbf16>) -> tensor<1x1x32xf32>
  ...
  func.return %logits : tensor<1x1x32xf32>
// post-topk{k=4}
func.func @post(%input: tensor<1x1x16xbf16>) -> (tensor<1x1x4xi32>, tensor<1x1x4xf32>)
  ...
  %probs, %indices = tfm.topk %logits {k = 4 : i64} : (tensor<1x1x32xf32>) -> (tensor<1x1x4xf32>, tensor<1x1x4xi32>)
  func.return %indices, %probs : tensor<1x1x4xi32>, tensor<1x1x4xf32>
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32, i32
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from axc.dialects import tfm
from axc.dialects.axc import OUTPUT_NAMES_ATTR, POST, name_array
from axc.errors import AxcError

OUTPUT_NAMES = ("indices", "probs")


@dataclass
class TopKOfLogits(RewritePattern):
    """`return %logits` of `@post` → `return %indices, %probs` of a `tfm.topk`."""

    k: int

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.FuncOp, rewriter: PatternRewriter) -> None:
        ret = op.body.block.last_op
        if op.sym_name.data != POST or not isinstance(ret, func.ReturnOp) or len(ret.operands) != 1:
            return
        logits = ret.operands[0]
        shape = tfm.shape_of(logits)
        if not self.k <= shape[-1]:
            raise AxcError(f"post-topk: k={self.k} exceeds the vocabulary of {shape[-1]} tokens")
        out_shape = (*shape[:-1], self.k)
        topk = tfm.TopKOp.create(
            operands=[logits],
            result_types=[TensorType(f32, out_shape), TensorType(i32, out_shape)],
            properties={"k": tfm.int_prop(self.k)},
        )
        topk.values.name_hint, topk.indices.name_hint = "probs", "indices"
        rewriter.insert(topk, InsertPoint.before(ret))
        rewriter.replace(ret, func.ReturnOp(topk.indices, topk.values))
        op.function_type = func.FunctionType.from_lists(
            list(op.function_type.inputs.data), [topk.indices.type, topk.values.type]
        )
        op.attributes[OUTPUT_NAMES_ATTR] = name_array(OUTPUT_NAMES)


@dataclass(frozen=True)
class PostTopk(ModulePass):
    """Make `@post` return its top-`k` ids and probabilities (`k=0`: keep the logits)."""

    name: ClassVar[str] = "post-topk"

    k: int = 0

    def __post_init__(self) -> None:
        if self.k < 0:
            raise AxcError(f"post-topk: k={self.k} must be 0 (logits) or positive")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.k == 0:
            return
        if not any(isinstance(f, func.FuncOp) and f.sym_name.data == POST for f in op.ops):
            raise AxcError("post-topk: the module has no @post function")
        PatternRewriteWalker(TopKOfLogits(self.k), apply_recursively=False).rewrite_module(op)
