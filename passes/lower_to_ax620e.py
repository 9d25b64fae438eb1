"""`lower-to-ax620e`: npu tile programs → `ax620e` engine programs, one `ax620e.model` per file.

Every address is resolved (OCM from `allocate-ocm`, DDR I/O buffers, scratch, and one
parameter blob per layer shared by its shape groups), instructions are scheduled onto the
engines' queues with dependency tokens, and loops stay loops. The walk is shared with the
other chip: `axc.codegen.lowering` (address assignment) and `axc.codegen.schedule`.

```mlir
func.func @layer_0_g0(...) { npu.loop %n = 0 to 2 { npu.dma_load ... ; npu.matmul ... } ... }
// lower-to-ax620e
ax620e.model @layer_0 {chip = "AX620E", npu_mode = "NPU1"} {
  ax620e.segment <"axc"::"model.layers.0.mlp.up_proj.s8"> at 0 : tensor<160x64xi8>
  ax620e.group "decode" (...) -> (...) scratch 0 {
    ax620e.loop l0 = 0 to 2 {
      ax620e.dma_load c0.dma0 signal 0 src = params[0 + 4096 * l0 : 64x64 : 64x1] : i8, dst = ocm[0 : 64x64 : 64x1] : i8
      ax620e.matmul c0.mx wait [0] ...
    }
  }
}
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from axc.codegen.lowering import lower_module
from axc.dialects.ax620e import AX620E


@dataclass(frozen=True)
class LowerToAx620e(ModulePass):
    name: ClassVar[str] = "lower-to-ax620e"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        lower_module(op, AX620E, "AX620E")
