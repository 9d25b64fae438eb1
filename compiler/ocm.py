"""OCM placement of npu functions, shared by `tile`, `fuse`, `double-buffer` and
`allocate-ocm`: buffer lifetimes, first-fit packing, keeping a function placeable while it
is rewritten, and the capacity a module was planned for.

A buffer is live from the first to the last top-level op that touches it (a use inside a
loop keeps it live for the whole loop). `pack` places buffers at the lowest aligned offset
that no buffer with an overlapping lifetime occupies, trying three orders (`ORDERS`):

```python
lives = lifetimes(function)
missing = pack(lives, 1 << 20)   # None: every buffer has an offset
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, StringAttr
from xdsl.ir import Operation

from axc.dialects import npu
from axc.dialects.axc import NPU_MODE_ATTR, TARGET_ATTR
from axc.dialects.npu import int_prop
from axc.errors import AxcError
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


def capacity(module: ModuleOp, ocm_bytes: int = 0) -> int:
    """OCM bytes per core: `ocm_bytes` if set, else what `tile` recorded, else the target's."""
    if ocm_bytes:
        return ocm_bytes
    recorded = module.attributes.get(npu.OCM_CAPACITY_ATTR)
    if isinstance(recorded, IntegerAttr):
        return recorded.value.data
    chip = module.attributes.get(TARGET_ATTR)
    mode = module.attributes.get(NPU_MODE_ATTR)
    if isinstance(chip, StringAttr):
        return get_target(chip.data, mode.data if isinstance(mode, StringAttr) else "NPU1").ocm_bytes_per_core
    raise AxcError("allocate-ocm: the module names no target; run tile{target=...} first or pass ocm-bytes")
