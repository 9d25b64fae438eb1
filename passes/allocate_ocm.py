"""`allocate-ocm`: static placement of every OCM buffer of every npu function.

Memory planning needs the whole function at once, so this pass walks the IR by hand. A
buffer is live from the first to the last top-level op that touches it (a use inside a
loop keeps it live for the whole loop). Buffers are placed largest first at the lowest
aligned offset that no buffer with an overlapping lifetime occupies, so buffers whose
lifetimes are disjoint share memory; when that order fragments OCM so that a buffer does
not fit, birth order and longest-lived-first are tried before giving up (`axc.ocm.pack`,
which `tile` and `double-buffer` also use to check that what they make will fit). Each
function records the bytes it uses:

```mlir
func.func @layer_0_g0(...) attributes {npu.ocm_bytes = 41216 : i64} {
  %w = npu.alloc {alignment = 32 : i64, offset = 0 : i64} : !npu.buf<128x896xi8, ocm>
```

A buffer that does not fit is one line naming it, the bytes it asks for and what is free:
`allocate-ocm: @layer_0_g1: %acc = npu.alloc : !npu.buf<...> needs 262144 bytes at npu.loop
(op 57) but only 98304 of 1048576 bytes are free there; ...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from axc.dialects import npu
from axc.dialects.npu import int_prop
from axc import ocm
from axc.structure import transform_once


@dataclass(frozen=True)
class AllocateOcm(ModulePass):
    """Place every OCM buffer; capacity from `ocm-bytes`, else what `tile` recorded."""

    name: ClassVar[str] = "allocate-ocm"

    ocm_bytes: int = 0

    def capacity(self, module: ModuleOp) -> int:
        return ocm.capacity(module, self.ocm_bytes)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        capacity = self.capacity(op)

        def allocate(function: func.FuncOp) -> None:
            function.attributes[npu.OCM_BYTES_ATTR] = int_prop(ocm.place(function, capacity))

        def copy_offsets(placed: func.FuncOp, twin: func.FuncOp) -> None:
            """A structurally identical function gets the same placement."""
            for a, b in zip(placed.body.block.ops, twin.body.block.ops, strict=True):
                if isinstance(a, npu.AllocOp) and isinstance(b, npu.AllocOp) and a.offset is not None:
                    b.offset = a.offset
            twin.attributes[npu.OCM_BYTES_ATTR] = placed.attributes[npu.OCM_BYTES_ATTR]

        functions = [
            f for f in op.ops
            if isinstance(f, func.FuncOp) and any(isinstance(o, npu.AllocOp) for o in f.body.block.ops)
        ]
        transform_once(op, functions, allocate, copy_offsets)
