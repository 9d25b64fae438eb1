"""The rewrite patterns that keep a GPTQ checkpoint's codes: `import-gptq` runs them, and
`quantize-weights` runs them before it quantizes what is left.

```mlir
%y = tfm.linear %x, %w       // %w = axc.param <"model"::"<prefix>.weight"> of a GPTQ checkpoint
// ImportGptqLinear
%w = quant.weight <"axc"::"<prefix>.s4"> scales <"axc"::"<prefix>.s4.scales"> : !quant.w<s4, ...>
%y = quant.linear %x, %w
```
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

from axc.binding import CREATED_SCOPE
from axc.dialects import quant, tfm
from axc.dialects.axc import ParamOp
from axc.checkpoints.gptq import GptqCheckpoint
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
