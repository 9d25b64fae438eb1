"""`fuse`: npu patterns that keep intermediates in OCM, one match → one replacement each.

- `FuseAddNorm`: a residual `npu.add` whose sum feeds `npu.rms_norm` becomes one
  `npu.add_rms_norm` (one pass over the row instead of two).
- `FuseActMul`: `npu.act` feeding `npu.mul` becomes `npu.act_mul`; the activation buffer dies.
- `FuseGatedLoops`: the gate and up weight-streaming loops feeding an `npu.act_mul` merge
  into one loop that multiplies each output tile as it is produced, so the full gate and
  up buffers are never written. (`tile` already emits a gated MLP as one such loop nest,
  whatever its tiling; this merges separately written loops of any other npu IR.)
- `EraseDeadAlloc`: buffers nothing uses any more.

A function that fits OCM (the module's `npu.ocm_capacity`) before fusion and would not
after it is left unfused (`axc.ocm.keep_fitting`): fusion can lengthen lifetimes.

```mlir
npu.loop %n = 0 to 19 { dma Wg[n] ; matmul %h, %wg -> %gate[256 * %n : 1x256] }
npu.loop %n = 0 to 19 { dma Wu[n] ; matmul %h, %wu -> %up[256 * %n : 1x256] }
npu.act %gate -> %a {kind = "silu"}
npu.mul %a, %up -> %y
// fuse
npu.loop %n = 0 to 19 {
  dma Wg[n] ; matmul %h, %wg -> %g ; dma Wu[n] ; matmul %h, %wu -> %u
  npu.act_mul %g, %u -> %y[256 * %n : 1x256] {kind = "silu"}
}
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from axc.dialects import npu
from axc.dialects.npu import Access, BufferType
from axc.ir_utils import enclosing_function
from axc.npu_builder import Emitter, access_of, clone_into, nested, touches, writes, written
from axc.ocm import keep_fitting
from axc.structure import transform_once


def between(first: Operation, last: Operation) -> Iterator[Operation]:
    op = first.next_op
    while op is not None and op is not last:
        yield op
        op = op.next_op


def writer_before(op: Operation, buffer: SSAValue) -> Operation | None:
    """The closest earlier op of the same block that writes `buffer`."""
    current = op.prev_op
    while current is not None:
        if writes(current, buffer):
            return current
        current = current.prev_op
    return None


def same_access(a: Access, b: Access) -> bool:
    return a.value is b.value and a.offset == b.offset and a.resolved() == b.resolved()


@dataclass
class FuseAddNorm(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: npu.RMSNormOp, rewriter: PatternRewriter) -> None:
        total = op.input
        add = writer_before(op, total)
        if not isinstance(add, npu.AddOp) or not same_access(access_of(add, "out"), access_of(op, "input")):
            return
        if any(touches(o, total) or writes(o, add.lhs) or writes(o, add.rhs) for o in between(add, op)):
            return
        fused = npu.AddRMSNormOp.make(
            {
                "lhs": access_of(add, "lhs"),
                "rhs": access_of(add, "rhs"),
                "weight": access_of(op, "weight"),
                "sum": access_of(add, "out"),
                "out": access_of(op, "out"),
            },
            {"eps": op.eps},
        )
        rewriter.replace(op, fused)
        rewriter.erase(add)


@dataclass
class FuseActMul(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: npu.MulOp, rewriter: PatternRewriter) -> None:
        for name, other in (("lhs", "rhs"), ("rhs", "lhs")):
            activated = getattr(op, name)
            act = writer_before(op, activated)
            if not isinstance(act, npu.ActOp) or not same_access(access_of(act, "out"), access_of(op, name)):
                continue
            if any(use.operation not in (act, op) for use in activated.uses):
                continue
            if npu.element_of(activated) != npu.element_of(op.out):
                continue  # act_mul rounds the activation to the product's type
            if any(writes(o, act.input) or writes(o, getattr(op, other)) for o in between(act, op)):
                continue
            fused = npu.ActMulOp.make(
                {"gate": access_of(act, "input"), "up": access_of(op, other), "out": access_of(op, "out")},
                {"kind": act.kind},
            )
            rewriter.replace(op, fused)
            rewriter.erase(act)
            return


def shape_signature(block: Block) -> tuple[object, ...]:
    """Op names and loop bounds of a loop nest, to tell whether two nests can merge."""
    return tuple(
        (o.name, o.iterations(), shape_signature(o.body.block)) if isinstance(o, npu.LoopOp) else o.name
        for o in block.ops
    )


def producer(loop: npu.LoopOp, buffer: SSAValue) -> npu.AccessOp | None:
    """The one op of a loop nest that writes `buffer` (a matmul, or the cast or bias add
    that finishes a K-split accumulation)."""
    found = [o for o in nested(loop) if writes(o, buffer) and not isinstance(o, npu.LoopOp)]
    return found[0] if len(found) == 1 and isinstance(found[0], npu.AccessOp) else None


@dataclass
class FuseGatedLoops(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: npu.ActMulOp, rewriter: PatternRewriter) -> None:
        if op.ivs:
            return
        up_loop, gate_loop = op.prev_op, op.prev_op.prev_op if op.prev_op else None
        if not isinstance(up_loop, npu.LoopOp) or not isinstance(gate_loop, npu.LoopOp):
            return
        gate, up, out = op.gate, op.up, op.out
        shapes = {npu.dims_of(v) for v in (gate, up, out)}
        if len(shapes) != 1 or any(not same_access(access_of(op, n), Access(v)) for n, v in (("gate", gate), ("up", up), ("out", out))):
            return
        mm_gate, mm_up = producer(gate_loop, gate), producer(up_loop, up)
        if mm_gate is None or mm_up is None or shape_signature(gate_loop.body.block) != shape_signature(up_loop.body.block):
            return
        if gate_loop.iterations() != up_loop.iterations():
            return
        if any(u.operation is not op and u.operation is not mm_gate for u in gate.uses):
            return
        if any(u.operation is not op and u.operation is not mm_up for u in up.uses):
            return
        if touches(gate_loop, out) or touches(up_loop, out):
            return
        if any(touches(up_loop, b) for b in written(gate_loop)) or any(touches(gate_loop, b) for b in written(up_loop)):
            return  # interleaving the bodies must not reorder a write and a read of one buffer
        function = enclosing_function(op)
        assert isinstance(function, func.FuncOp)
        tiles: dict[SSAValue, SSAValue] = {}
        for matmul, buffer in ((mm_gate, gate), (mm_up, up)):
            sizes = matmul.view_of("out").sizes
            alloc = npu.AllocOp(BufferType(sizes, npu.element_of(buffer)), name=f"{buffer.name_hint or 'tile'}_tile")
            rewriter.insert(alloc, InsertPoint.at_start(function.body.block))
            tiles[buffer] = alloc.result
        merged = npu.LoopOp(gate_loop.lb.value.data, gate_loop.ub.value.data, gate_loop.step.value.data)
        merged.iv.name_hint = gate_loop.iv.name_hint
        values: dict[SSAValue, SSAValue] = {gate_loop.iv: merged.iv, up_loop.iv: merged.iv}
        emitter = Emitter(merged.body.block)
        merge_bodies(gate_loop.body.block, up_loop.body.block, emitter, values, (mm_gate, mm_up), tiles, op)
        rewriter.replace(op, merged)
        rewriter.erase(up_loop)
        rewriter.erase(gate_loop)


def merge_bodies(
    first: Block,
    second: Block,
    emitter: Emitter,
    values: dict[SSAValue, SSAValue],
    matmuls: tuple[npu.AccessOp, npu.AccessOp],
    tiles: dict[SSAValue, SSAValue],
    act_mul: npu.ActMulOp,
) -> None:
    """Interleave two isomorphic loop bodies: loops merge level by level, other ops of the
    first body come before those of the second; the two producers write tiles and an
    `npu.act_mul` of the tiles follows the second."""
    for a, b in zip(list(first.ops), list(second.ops), strict=True):
        if isinstance(a, npu.LoopOp) and isinstance(b, npu.LoopOp):
            inner = npu.LoopOp(a.lb.value.data, a.ub.value.data, a.step.value.data)
            inner.iv.name_hint = a.iv.name_hint
            values[a.iv] = values[b.iv] = inner.iv
            emitter.emit(inner)
            outer, emitter.block = emitter.block, inner.body.block
            merge_bodies(a.body.block, b.body.block, emitter, values, matmuls, tiles, act_mul)
            emitter.block = outer
            continue
        for op in (a, b):
            if isinstance(op, npu.AccessOp) and op in matmuls:
                target = access_of(op, "out")
                buffer = target.value
                tile = Access(tiles[buffer])
                copy = type(op).make(
                    {n: (tile if n == "out" else access_of(op, n)) for n in op.operand_names()},
                    {k: v for k, v in op.properties.items() if k not in ("views", "operandSegmentSizes")},
                )
                clone_into([copy], emitter, {}, values)
                copy.erase()
                if op is matmuls[1]:
                    out = Access(act_mul.out, target.offset, target.sizes, target.strides)
                    product = npu.ActMulOp.make(
                        {"gate": Access(tiles[access_of(matmuls[0], "out").value]), "up": tile, "out": out},
                        {"kind": act_mul.kind},
                    )
                    clone_into([product], emitter, {}, values)
                    product.erase()
            else:
                clone_into([op], emitter, {}, values)


@dataclass
class EraseDeadAlloc(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: npu.AllocOp, rewriter: PatternRewriter) -> None:
        if not op.result.uses:
            rewriter.erase(op)


PATTERNS = (FuseAddNorm, FuseActMul, FuseGatedLoops, EraseDeadAlloc)


@dataclass(frozen=True)
class Fuse(ModulePass):
    name: ClassVar[str] = "fuse"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        def fuse(function: func.FuncOp) -> None:
            PatternRewriteWalker(GreedyRewritePatternApplier([p() for p in PATTERNS])).rewrite_region(function.body)

        recorded = op.attributes.get(npu.OCM_CAPACITY_ATTR)
        capacity = recorded.value.data if isinstance(recorded, IntegerAttr) else 0  # none: not from tile, nothing to keep
        functions = [f for f in op.ops if isinstance(f, func.FuncOp) and any(isinstance(o, npu.AllocOp) for o in f.body.block.ops)]
        transform_once(op, functions, lambda f: keep_fitting(f, capacity, [fuse]) if capacity else fuse(f))
