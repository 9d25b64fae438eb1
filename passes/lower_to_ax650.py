"""`lower-to-ax650`: npu tile programs → `ax650` engine programs, one `ax650.model` per file.

Every address is resolved (OCM from `allocate-ocm`, DDR I/O buffers, scratch, and one
parameter blob per layer shared by its shape groups), instructions are scheduled onto the
engines' queues with dependency tokens, and loops stay loops. The walk is shared with the
other chip: `axc.codegen.lowering` (address assignment) and `axc.codegen.schedule`.

```mlir
func.func @layer_0_g0(...) { npu.loop %n = 0 to 2 { npu.dma_load ... ; npu.matmul ... } ... }
// lower-to-ax650
ax650.model @layer_0 {chip = "AX650", npu_mode = "NPU1"} {
  ax650.segment <"axc"::"model.layers.0.mlp.up_proj.s8"> at 0 : tensor<160x64xi8>
  ax650.group "decode" (...) -> (...) scratch 0 {
    ax650.loop l0 = 0 to 2 {
      ax650.dma_load c0.dma0 signal 0 src = params[0 + 4096 * l0 : 64x64 : 64x1] : i8, dst = ocm[0 : 64x64 : 64x1] : i8
      ax650.matmul c0.mx wait [0] ...
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
from axc.dialects.ax650 import AX650


@dataclass(frozen=True)
class LowerToAx650(ModulePass):
    """`float-matmul-use-conv-eu=true` (the vendor's FLOAT_MATMUL_USE_CONV_EU=1): float
    matmuls, activation x activation (attention's QK^T and PV), run on the convolution
    units, `ax650.matmul c0.cv ...`, instead of the matrix engine `c0.mx`."""

    name: ClassVar[str] = "lower-to-ax650"
    float_matmul_use_conv_eu: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        lower_module(op, AX650, "AX650", self.float_matmul_use_conv_eu)
