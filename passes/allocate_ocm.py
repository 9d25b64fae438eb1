"""`allocate-ocm`: static placement of every OCM buffer of every npu function.

Memory planning needs the whole function at once, so this pass walks the IR by hand. A
buffer is live from the first to the last top-level op that touches it (a use inside a
loop keeps it live for the whole loop). Buffers are placed largest first at the lowest
aligned offset that no buffer with an overlapping lifetime occupies, so buffers whose
lifetimes are disjoint share memory; when that order fragments OCM so that a buffer does
not fit, birth order and longest-lived-first are tried before giving up (`pack`, which
`tile` and `double-buffer` also use to check that what they make will fit). Each
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from axc.dialects import npu
from axc.dialects.axc import NPU_MODE_ATTR, TARGET_ATTR
from axc.dialects.npu import int_prop
from axc.errors import AxcError
from axc.structure import transform_once
from axc.targets import get_target


@dataclass
class Lifetime:
    alloc: npu.AllocOp | None
    first: int
    last: int
    size: int
    offset: int = -1
    align: int = 32

    def overlaps(self, other: Lifetime) -> bool:
        return self.first <= other.last and other.first <= self.last


def lifetimes(function: func.FuncOp) -> list[Lifetime]:
    """Live ranges of the OCM buffers of `function`, in top-level op indices."""
    top = list(function.body.block.ops)
    index = {op: i for i, op in enumerate(top)}
    result: dict[npu.AllocOp, Lifetime] = {}
    for op in top:
        if isinstance(op, npu.AllocOp) and op.buffer_type.on_chip:
            result[op] = Lifetime(op, len(top), -1, op.buffer_type.nbytes, align=op.alignment.value.data)
    for op in function.body.walk():
        if isinstance(op, npu.AllocOp) and op.parent_op() is not function and op.buffer_type.on_chip:
            raise AxcError(f"allocate-ocm: @{function.sym_name.data}: npu.alloc inside a loop; allocate at the function top")
    for alloc, life in result.items():
        for use in alloc.result.uses:
            owner: Operation | None = use.operation
            while owner is not None and owner not in index:
                owner = owner.parent_op()
            if owner is None:
                continue
            life.first = min(life.first, index[owner])
            life.last = max(life.last, index[owner])
        if life.last < 0:
            life.first = life.last = index[alloc]
    return list(result.values())


def describe(alloc: npu.AllocOp | None) -> str:
    if alloc is None:
        return "a buffer"
    name = alloc.result.name_hint or "buffer"
    return f"%{name} = npu.alloc : {alloc.buffer_type}"


ORDERS: tuple[Callable[[Lifetime], tuple[int, ...]], ...] = (
    lambda life: (-life.size, life.first),
    lambda life: (life.first, -life.size),
    lambda life: (life.first - life.last, -life.size),
)
"""Placement orders tried in turn: largest first, then by birth, then longest-lived first
(greedy placement can fragment where another order packs)."""


def place_in_order(lives: list[Lifetime], capacity: int) -> Lifetime | None:
    """Give each lifetime (in order) the lowest aligned offset free over its whole life;
    returns the first that does not fit (offsets then are partial), else None."""
    placed: list[Lifetime] = []
    for life in lives:
        offset = 0
        for other in sorted((p for p in placed if p.overlaps(life)), key=lambda p: p.offset):
            if offset + life.size <= other.offset:
                break
            offset = max(offset, -(-(other.offset + other.size) // life.align) * life.align)
        if offset + life.size > capacity:
            return life
        life.offset = offset
        placed.append(life)
    return None


def pack(lives: list[Lifetime], capacity: int) -> Lifetime | None:
    """Place `lives` within `capacity`, trying each of `ORDERS`; returns None on success,
    else the lifetime that did not fit in the first order."""
    failed: Lifetime | None = None
    for order in ORDERS:
        missing = place_in_order(sorted(lives, key=order), capacity)
        if missing is None:
            return None
        failed = failed or missing
    return failed


def keep_fitting(function: func.FuncOp, capacity: int, attempts: Sequence[Callable[[func.FuncOp], None]]) -> func.FuncOp:
    """`function` after the first of `attempts` (in-place transforms) whose result still
    packs in `capacity` OCM bytes; `function` untouched when none does. (A function that
    did not pack before gets the first attempt.) Passes after `tile` use this so that a
    function `tile` made fit keeps fitting."""
    if pack(lifetimes(function), capacity) is not None:
        attempts[0](function)
        return function
    pristine = function.clone()
    candidate = function
    for attempt in attempts:
        attempt(candidate)
        if pack(lifetimes(candidate), capacity) is None:
            return candidate
        candidate = pristine.clone()
    return pristine


def place(function: func.FuncOp, capacity: int) -> int:
    """Set the offsets of `function`'s OCM buffers; returns the bytes used."""
    lives = lifetimes(function)
    missing = pack(lives, capacity)
    if missing is not None:
        busy = max(
            (sum(p.size for p in lives if p is not missing and p.first <= t <= p.last) for t in range(missing.first, missing.last + 1)),
            default=0,
        )
        user = list(function.body.block.ops)[missing.first].name
        raise AxcError(
            f"allocate-ocm: @{function.sym_name.data}: {describe(missing.alloc)} needs {missing.size} bytes "
            f"at {user} (op {missing.first}) but only {max(capacity - busy, 0)} of {capacity} bytes are free there; "
            "lower the tile sizes (tile{ocm-bytes=...}) or use a target with more OCM"
        )
    for life in lives:
        assert life.alloc is not None
        life.alloc.offset = int_prop(life.offset)
    return max((life.offset + life.size for life in lives), default=0)


@dataclass(frozen=True)
class AllocateOcm(ModulePass):
    """Place every OCM buffer; capacity from `ocm-bytes`, else what `tile` recorded."""

    name: ClassVar[str] = "allocate-ocm"

    ocm_bytes: int = 0

    def capacity(self, module: ModuleOp) -> int:
        if self.ocm_bytes:
            return self.ocm_bytes
        recorded = module.attributes.get(npu.OCM_CAPACITY_ATTR)
        if isinstance(recorded, IntegerAttr):
            return recorded.value.data
        chip = module.attributes.get(TARGET_ATTR)
        mode = module.attributes.get(NPU_MODE_ATTR)
        if isinstance(chip, StringAttr):
            return get_target(chip.data, mode.data if isinstance(mode, StringAttr) else "NPU1").ocm_bytes_per_core
        raise AxcError("allocate-ocm: the module names no target; run tile{target=...} first or pass ocm-bytes")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        capacity = self.capacity(op)

        def allocate(function: func.FuncOp) -> None:
            function.attributes[npu.OCM_BYTES_ATTR] = int_prop(place(function, capacity))

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
