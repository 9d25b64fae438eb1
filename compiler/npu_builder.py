"""Building and restructuring `npu` programs: an emitter, views, and induction-variable
substitution (used by `tile`, `fuse` and `double-buffer`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from xdsl.ir import Attribute, Block, Operation, SSAValue

from axc.dialects import npu
from axc.dialects.npu import OCM, Access, Affine, BufferType


@dataclass
class Emitter:
    """Appends ops to a block; allocations go to a separate list (hoisted to the entry).

    Every buffer of a function is allocated once at its top, so `allocate-ocm` sees the
    whole program and loops never allocate.
    """

    block: Block
    allocs: list[Operation] = field(default_factory=list)
    alignment: int = 32

    def alloc(self, shape: tuple[int, ...], element: Attribute, space: str = OCM, name: str | None = None) -> SSAValue:
        op = npu.AllocOp(BufferType(shape, element, space), self.alignment, name)
        self.allocs.append(op)
        return op.result

    def emit(self, op: Operation) -> Operation:
        self.block.add_op(op)
        return op

    def access(self, cls: type[npu.AccessOp], accesses: Mapping[str, Access | SSAValue | None], **props: Attribute) -> Operation:
        return self.emit(cls.make(accesses, props))

    @contextmanager
    def loop(self, trips: int, name: str | None = None) -> Iterator[SSAValue]:
        loop = npu.LoopOp(0, trips)
        loop.iv.name_hint = name
        self.emit(loop)
        outer, self.block = self.block, loop.body.block
        try:
            yield loop.iv
        finally:
            self.block = outer

    def tiles(self, extent: int, tile: int, body: Callable[[Affine, int], None], name: str | None = None) -> None:
        """Call `body(start, size)` over `extent` in tiles: a loop over the full tiles,
        then the remainder (if any) once, with a constant start."""
        tile = max(1, min(tile, extent))
        full, rest = divmod(extent, tile)
        if full == 1:
            body(Affine(0), tile)
        elif full > 1:
            with self.loop(full, name) as iv:
                body(Affine.of(iv) * tile, tile)
        if rest:
            body(Affine(full * tile), rest)


def rows(value: SSAValue, width: int, start: Affine | int, count: int, col: Affine | int = 0, cols: int | None = None, stride: int | None = None) -> Access:
    """Rows `[start, start + count)` and columns `[col, col + cols)` of a row-major `[*, width]` value."""
    cols = width if cols is None else cols
    offset = Affine.of(start) * (width if stride is None else stride) + col
    return Access(value, offset, (count, cols), (width if stride is None else stride, 1))


def iv_terms(op: npu.AccessOp) -> list[tuple[SSAValue, Affine]]:
    """Each view of `op` as (value, affine offset over SSA ivs)."""
    ivs = tuple(op.ivs)  # type: ignore[attr-defined]  # every AccessOp has ivs; AccessOp itself does not declare them
    result = []
    for _, value, view in op.accesses():
        offset = Affine(view.coeffs[0], tuple((iv, c) for iv, c in zip(ivs, view.coeffs[1:]) if c))
        result.append((value, offset))
    return result


def substituted(op: npu.AccessOp, mapping: Mapping[SSAValue, Affine], values: Mapping[SSAValue, SSAValue] | None = None) -> npu.AccessOp:
    """A copy of `op` with ivs replaced by affine forms and operands renamed by `values`."""
    values = values or {}
    accesses: dict[str, Access] = {}
    for (name, value, view), (_, offset) in zip(op.accesses(), iv_terms(op)):
        new = Affine(offset.const)
        for iv, coeff in offset.terms:
            new = new + Affine.of(mapping.get(iv, Affine.of(values.get(iv, iv)))) * coeff
        accesses[name] = Access(values.get(value, value), new, view.sizes, view.strides)
    props = {k: v for k, v in op.properties.items() if k not in ("views", "operandSegmentSizes")}
    new_op = type(op).make(accesses, props)
    new_op.attributes.update(op.attributes)
    return new_op


def clone_into(ops: list[Operation], emitter: Emitter, mapping: Mapping[SSAValue, Affine], values: dict[SSAValue, SSAValue]) -> None:
    """Clone `ops` at the emitter, substituting ivs (nested loops get fresh ivs)."""
    for op in ops:
        if isinstance(op, npu.LoopOp):
            inner = npu.LoopOp(op.lb.value.data, op.ub.value.data, op.step.value.data)
            inner.attributes.update(op.attributes)
            inner.iv.name_hint = op.iv.name_hint
            values[op.iv] = inner.iv
            emitter.emit(inner)
            outer, emitter.block = emitter.block, inner.body.block
            clone_into(list(op.body.block.ops), emitter, mapping, values)
            emitter.block = outer
        elif isinstance(op, npu.AccessOp):
            emitter.emit(substituted(op, mapping, values))
        else:
            emitter.emit(op.clone(value_mapper=values))


def access_of(op: npu.AccessOp, name: str) -> Access:
    """The named operand of `op` as an `Access`."""
    ivs = tuple(op.ivs)  # type: ignore[attr-defined]  # every AccessOp has ivs; AccessOp itself does not declare them
    for n, value, view in op.accesses():
        if n == name:
            offset = Affine(view.coeffs[0], tuple((iv, c) for iv, c in zip(ivs, view.coeffs[1:]) if c))
            return Access(value, offset, view.sizes, view.strides)
    raise KeyError(name)


def nested(op: Operation) -> Iterator[Operation]:
    """`op` and every op inside it."""
    yield op
    for region in op.regions:
        yield from region.walk()


def writes(op: Operation, buffer: SSAValue) -> bool:
    """Whether `op` (or an op inside it) writes `buffer`."""
    return any(
        isinstance(o, npu.AccessOp) and any(o.is_output(n) and v is buffer for n, v, _ in o.accesses())
        for o in nested(op)
    )


def written(op: Operation) -> set[SSAValue]:
    """The buffers `op` (or an op inside it) writes."""
    return {
        v for o in nested(op) if isinstance(o, npu.AccessOp) for n, v, _ in o.accesses() if o.is_output(n)
    }


def touches(op: Operation, buffer: SSAValue) -> bool:
    """Whether `op` (or an op inside it) reads or writes `buffer`."""
    return any(buffer in o.operands for o in nested(op))
