"""`import-gptq`: GPTQ linears → `quant.linear` over their own integer codes.

`--import-hf` gives a GPTQ linear an fp32 `<prefix>.weight` that the checkpoint view
dequantizes exactly (`axc.checkpoints.gptq`). This pass swaps it for the stored form: the
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

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import GreedyRewritePatternApplier, PatternRewriteWalker

from axc.binding import store_for
from axc.gptq_patterns import EraseUnusedParam, ImportGptqLinear


@dataclass(frozen=True)
class ImportGptq(ModulePass):
    """Repack every GPTQ linear of the module into `quant` storage."""

    name: ClassVar[str] = "import-gptq"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        patterns = [ImportGptqLinear(store_for(op)), EraseUnusedParam()]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)
