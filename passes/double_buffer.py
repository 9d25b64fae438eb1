"""`double-buffer`: overlap DMA with compute by ping-ponging streamed tiles.

A loop whose body starts a tile's life with a `npu.dma_load` (a weight tile, a KV tile;
the buffer is used nowhere else) gets a second buffer; iteration k+1's loads are issued
(asynchronously, tagged with an event) before iteration k computes, and a barrier waits
for a tile's own event right before its compute. The loop is unrolled by two so that every
offset stays affine in the new induction variable, with a prologue and an epilogue:

```mlir
npu.loop %n = 0 to 4 { npu.dma_load %w[256 * %n : 1x256] -> %t ; npu.matmul %x, %t -> %y[...] }
// double-buffer
npu.dma_load %w[0 : 1x256] -> %t {event = 0 : i64}
npu.loop %j = 0 to 1 {
  npu.dma_load %w[512 * %j + 256 : 1x256] -> %t2 {event = 1 : i64}
  npu.barrier {events = [0 : i64]}
  npu.matmul %x, %t -> %y[...]          // tile 2j
  npu.dma_load %w[512 * %j + 512 : 1x256] -> %t {event = 0 : i64}
  npu.barrier {events = [1 : i64]}
  npu.matmul %x, %t2 -> %y[...]         // tile 2j+1
}
...                                     // tiles 2, 3
```

Loops are handled innermost first. A loop is left alone when OCM could not be placed
with its second buffers (`axc.ocm.pack` over the whole function, the twins live
where the loop is). Unrolling spreads a loop's buffers over the prologue and epilogue,
which can make placement's greedy orders land differently; if the whole function then no
longer packs, it is pipelined again assuming less OCM (`SHARES`), and finally not at
all, so double buffering never makes a function that fits stop fitting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, UnitAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from axc.dialects import npu
from axc.dialects.npu import Affine, int_prop
from axc.ir_utils import enclosing_function
from axc import ocm
from axc.npu_builder import Emitter, clone_into, substituted, touches, writes
from axc.ocm import Lifetime, keep_fitting, lifetimes, pack
from axc.structure import transform_once

PIPELINED = "npu.pipelined"
SHARES = (1.0, 0.9, 0.75, 0.5)
"""Shares of OCM each loop's check may assume, tried in turn until the function packs."""


def inside(op: Operation, loop: Operation) -> bool:
    current: Operation | None = op
    while current is not None:
        if current is loop:
            return True
        current = current.parent_op()
    return False


def streamed(loop: npu.LoopOp) -> list[npu.DmaLoadOp]:
    """Loads at the top of `loop`'s body that (re)fill a buffer used only in this loop."""
    body = list(loop.body.block.ops)
    found = []
    for index, op in enumerate(body):
        if not isinstance(op, npu.DmaLoadOp) or op.event is not None:
            continue
        buffer = op.dst
        if not isinstance(buffer.owner, npu.AllocOp):
            continue
        if any(not inside(use.operation, loop) for use in buffer.uses):
            continue
        if any(touches(o, buffer) for o in body[:index]):
            continue
        if any(writes(o, buffer) for o in body if o is not op):
            continue
        if any(writes(o, op.src) for o in body):
            continue
        found.append(op)
    return found


@dataclass
class PipelineLoop(RewritePattern):
    capacity: int

    @op_type_rewrite_pattern
    def match_and_rewrite(self, loop: npu.LoopOp, rewriter: PatternRewriter) -> None:
        trips = len(loop.iterations())
        if PIPELINED in loop.attributes or trips < 2:
            return
        loads = streamed(loop)
        if not loads:
            return
        function = enclosing_function(loop)
        assert isinstance(function, func.FuncOp)
        top = loop
        while top.parent_op() is not function:
            top = top.parent_op()  # type: ignore[assignment]  # inside a function, every ancestor of the loop is an op
        position = list(function.body.block.ops).index(top)
        lives = lifetimes(function)
        twins = [
            Lifetime(None, position, position, load.dst.type.nbytes, align=load.dst.owner.alignment.value.data)  # type: ignore[attr-defined, union-attr]  # dst is an npu.alloc result: a BufferType from an AllocOp
            for load in loads
        ]
        if pack(lives + twins, self.capacity) is not None:
            return
        events = [e.value.data for o in function.body.walk() if isinstance(o, npu.DmaOp) and (e := o.event) is not None]
        first_event = max(events, default=-1) + 1
        buffers: list[dict[SSAValue, SSAValue]] = [{}, {}]
        for load in loads:
            alloc = load.dst.owner
            assert isinstance(alloc, npu.AllocOp)
            twin = npu.AllocOp(alloc.buffer_type, alloc.alignment.value.data, alloc.result.name_hint)
            rewriter.insert(twin, InsertPoint.after(alloc))
            buffers[0][load.dst] = load.dst
            buffers[1][load.dst] = twin.result
        rest = [op for op in loop.body.block.ops if op not in loads]
        lb, step = loop.lb.value.data, loop.step.value.data
        emitter = Emitter(loop.parent_block())  # type: ignore[arg-type]  # a loop always sits in a block
        outer = emitter.block
        staged: list[Operation] = []

        def iv_at(k: Affine) -> Affine:
            return k * step + lb

        def prefetch(k: Affine, parity: int) -> None:
            for load in loads:
                op = substituted(load, {loop.iv: iv_at(k)}, buffers[parity])
                op.properties["event"] = int_prop(first_event + parity)
                emitter.emit(op)

        def compute(k: Affine, parity: int) -> None:
            emitter.emit(npu.BarrierOp([first_event + parity]))
            clone_into(rest, emitter, {loop.iv: iv_at(k)}, dict(buffers[parity]))

        emitter.block = staging = type(outer)()
        prefetch(Affine(0), 0)
        pairs = (trips - 1) // 2
        if pairs:
            with emitter.loop(pairs, f"{loop.iv.name_hint or 'i'}2") as j:
                pair = Affine.of(j) * 2
                prefetch(pair + 1, 1)
                compute(pair, 0)
                prefetch(pair + 2, 0)
                compute(pair + 1, 1)
            pipelined = staging.last_op
            assert pipelined is not None
            pipelined.attributes[PIPELINED] = UnitAttr()
        for k in range(2 * pairs, trips):
            if k + 1 < trips:
                prefetch(Affine(k + 1), (k + 1) % 2)
            compute(Affine(k), k % 2)
        for op in list(staging.ops):
            op.detach()
            staged.append(op)
        rewriter.insert(staged, InsertPoint.before(loop))
        rewriter.erase(loop)


@dataclass(frozen=True)
class DoubleBuffer(ModulePass):
    """Ping-pong the streamed tiles of every loop where OCM allows."""

    name: ClassVar[str] = "double-buffer"

    ocm_bytes: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        capacity = ocm.capacity(op, self.ocm_bytes)

        def attempt(share: float) -> Callable[[func.FuncOp], None]:
            def pipeline(function: func.FuncOp) -> None:
                walker = PatternRewriteWalker(PipelineLoop(int(capacity * share)), walk_regions_first=True)
                walker.rewrite_region(function.body)

            return pipeline

        attempts = [attempt(share) for share in SHARES]
        functions = [f for f in op.ops if isinstance(f, func.FuncOp) and any(isinstance(o, npu.LoopOp) for o in f.body.walk())]
        transform_once(op, functions, lambda f: keep_fitting(f, capacity, attempts))

