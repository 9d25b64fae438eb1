"""`import-gptq`: GPTQ linears → `quant.linear` over their own integer codes.

`--import-hf` gives a GPTQ linear an fp32 `<prefix>.weight` that the checkpoint view
dequantizes exactly (`axc.frontend.gptq`). This pass swaps it for the stored form: the
same codes, zero points and fp16 scales repacked into `quant` storage (never
re-quantized), as new parameters of the scope `axc`:

```mlir
%w = axc.param <"model"::"model.layers.0.mlp.up_proj.weight"> : tensor<512x256xf32>
%y = tfm.linear %x, %w : (tensor<1x?x256xf32>, tensor<512x256xf32>) -> tensor<1x?x512xf32>
// becomes
%w = quant.weight <"axc"::"model.layers.0.mlp.up_proj.s4"> scales <"axc"::"model.layers.0.mlp.up_proj.s4.scales">
       : !quant.w<s4, 512x256, group = 128, sym, scale = f16>
%y = quant.linear %x, %w : (tensor<1x?x256xf32>, !quant.w<s4, 512x256, group = 128, sym, scale = f16>) -> tensor<1x?x512xf32>
```

Act-order checkpoints also get `perm <"axc"::"<prefix>.s4.perm">`: the input columns
sorted by group, so that every group is contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from axc.binding import CREATED_SCOPE, store_for
from axc.dialects import quant, tfm
from axc.dialects.axc import ParamOp
from axc.frontend.gptq import GptqCheckpoint
from axc.params import ParamStore


def gptq_source(store: ParamStore, op: tfm.LinearOp) -> tuple[GptqCheckpoint, str] | None:
    """The GPTQ checkpoint and linear prefix behind `op`'s weight, if it is one."""
    param = op.weight.owner
    if not isinstance(param, ParamOp):
        return None
    checkpoint = store.checkpoint(param.param.scope.data)
    if not isinstance(checkpoint, GptqCheckpoint):
        return None
    prefix = checkpoint.quantized_prefix(param.param.key.data)
    return None if prefix is None else (checkpoint, prefix)


@dataclass
class ImportGptqLinear(RewritePattern):
    """`tfm.linear` over a GPTQ weight → `quant.weight` + `quant.linear` (each weight packed once)."""

    store: ParamStore
    imported: dict[str, tuple[quant.WeightType, dict[str, str]]] = field(default_factory=dict)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: tfm.LinearOp, rewriter: PatternRewriter) -> None:
        source = gptq_source(self.store, op)
        if source is None:
            return
        checkpoint, prefix = source
        if prefix not in self.imported:
            weight = checkpoint.stored(prefix)
            keys = weight.save(self.store, CREATED_SCOPE, prefix)
            self.imported[prefix] = (quant.WeightType.of(weight.spec), keys)
        type_, keys = self.imported[prefix]
        stored = quant.WeightOp.of(type_, CREATED_SCOPE, keys)
        rewriter.replace(op, [stored, quant.LinearOp(op.input, stored.result, op.bias, op.result.type)])


class EraseUnusedParam(RewritePattern):
    """Drop an `axc.param` nothing reads any more (the weight a linear was rewritten from)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ParamOp, rewriter: PatternRewriter) -> None:
        if not op.result.uses:
            rewriter.erase_op(op)


@dataclass(frozen=True)
class ImportGptq(ModulePass):
    """Repack every GPTQ linear of the module into `quant` storage."""

    name: ClassVar[str] = "import-gptq"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        patterns = [ImportGptqLinear(store_for(op)), EraseUnusedParam()]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)
