"""Instruction scheduling of one shape group: queues, order, and dependency tokens.

Scheduling needs the whole program's memory footprints at once, so it works on the
`isa.Program` tree rather than as rewrite patterns. Four steps:

0. **Cores.** With npu_mode NPU2/NPU3 a matmul wide enough is split along N into one
   instruction per core, and a big row-wise vector op along its rows; the cores share
   OCM (one address space, a slice per core), so the pieces read the same tiles.
1. **Queues.** Matrix and vector instructions go to their engines; DMA loads spread over
   channels 0..n-2 by destination buffer (so ping-pong tiles stream on different
   channels), stores use the last channel. With `float_matmul_on_conv` (AX650's
   FLOAT_MATMUL_USE_CONV_EU) float matmuls, activation x activation (attention's QK^T and
   PV), go to the convolution units (`c<k>.cv`) instead of the matrix engine.
2. **Order.** Within each block (the top level, every loop body) nodes are list-scheduled:
   a node may move above the nodes it does not conflict with, and DMA loads move first,
   so a weight tile is requested as soon as its on-chip buffer is free. Loops stay loops
   (a loop moves as one node).
3. **Tokens.** Two instructions on different queues conflict when their byte footprints
   (over all iterations) overlap in one space and one of them writes. The later one
   waits on the earlier one's token; inside a loop the earlier one in text also waits on
   the later one (the previous iteration's instance). Signalling instructions take
   tokens round-robin; sharing a token only ever waits longer (a wait covers every
   earlier-dispatched signaller of the token), never less.

```
dma_load c0.dma0 signal 0 ...   // tile k+1 into buffer B
matmul   c0.mx   wait [1] ...   // tile k from buffer A: waits only for A's load
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from axc import isa
from axc.isa import Instr, Loop, Node, Operand, Program
from axc.errors import AxcError
from axc.targets import TargetDescriptor


@dataclasses.dataclass
class Flat:
    """Every instruction of a program in text order, with what scheduling needs."""

    instrs: list[Instr]
    paths: np.ndarray  # [N, MAX_DEPTH] ids of the enclosing loops (-1 beyond)
    queues: np.ndarray  # [N] core * 8 + queue
    conflicts: np.ndarray  # [N, N] bool, symmetric


def flatten(body: Sequence[Node]) -> tuple[list[Instr], list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Instructions, their loop-id paths and trip counts, in text order."""
    instrs: list[Instr] = []
    paths: list[tuple[int, ...]] = []
    trips: list[tuple[int, ...]] = []
    counter = [0]

    def visit(nodes: Sequence[Node], path: tuple[int, ...], counts: tuple[int, ...]) -> None:
        for node in nodes:
            if isinstance(node, Loop):
                counter[0] += 1
                visit(node.body, (*path, counter[0]), (*counts, node.trips))
            else:
                instrs.append(node)
                paths.append(path)
                trips.append(counts)

    visit(body, (), ())
    return instrs, paths, trips


def conflict_matrix(instrs: Sequence[Instr], trips: Sequence[tuple[int, ...]]) -> np.ndarray:
    """`[N, N]`: the two instructions touch a common byte of one space and one writes."""
    owners: list[int] = []
    regions: list[int] = []
    lows: list[int] = []
    highs: list[int] = []
    writes: list[bool] = []
    region_ids: dict[tuple[int, int], int] = {}
    for position, (instr, counts) in enumerate(zip(instrs, trips)):
        for name, operand in instr.named():
            first, end = operand.extent(counts)
            owners.append(position)
            regions.append(region_ids.setdefault((operand.space, operand.index), len(region_ids)))
            lows.append(first)
            highs.append(end)
            writes.append(name in instr.op.outputs)
    n = len(instrs)
    result = np.zeros((n, n), bool)
    owner, region = np.asarray(owners), np.asarray(regions)
    low, high, write = np.asarray(lows), np.asarray(highs), np.asarray(writes)
    operands = [(o, counts) for instr, counts in zip(instrs, trips) for _, o in instr.named()]
    cache: dict[int, tuple[np.ndarray, int] | None] = {}

    def runs_of(access: int) -> tuple[np.ndarray, int] | None:
        if access not in cache:
            cache[access] = runs(*operands[access])
        return cache[access]

    for rid in range(len(region_ids)):
        pick = np.flatnonzero(region == rid)
        if not write[pick].any():
            continue  # read-only space (parameters, inputs): no hazards
        lo, hi, wr, ow = low[pick], high[pick], write[pick], owner[pick]
        hit = (lo[:, None] < hi[None, :]) & (lo[None, :] < hi[:, None]) & (wr[:, None] | wr[None, :])
        hit &= ow[:, None] != ow[None, :]
        for a, b in zip(*np.nonzero(np.triu(hit))):
            x, y = int(ow[a]), int(ow[b])
            if result[x, y]:
                continue
            if overlaps(runs_of(int(pick[a])), runs_of(int(pick[b]))):
                result[x, y] = result[y, x] = True
    return result


RUN_LIMIT = 1 << 14
"""Contiguous runs enumerated per access before the exact test falls back to intervals."""


def runs(operand: Operand, trips: tuple[int, ...]) -> tuple[np.ndarray, int] | None:
    """Sorted start addresses and the common length of the contiguous byte runs an access
    touches over all iterations (None when there are too many to list)."""
    base = operand.base
    dims: list[tuple[int, int]] = []
    for size, stride in [*zip(trips, operand.loop_strides), *zip(operand.sizes, operand.strides)]:
        if size > 1 and stride:
            if stride < 0:
                base += (size - 1) * stride
                stride = -stride
            dims.append((stride, size))
    dims.sort()
    length = operand.itemsize
    while dims and dims[0][0] == length:
        length *= dims.pop(0)[1]
    count = 1
    for _, size in dims:
        count *= size
    if count > RUN_LIMIT:
        return None
    starts = np.array([base], np.int64)
    for stride, size in dims:
        starts = (starts[:, None] + stride * np.arange(size, dtype=np.int64)[None, :]).reshape(-1)
    return np.sort(starts), length


def overlaps(a: tuple[np.ndarray, int] | None, b: tuple[np.ndarray, int] | None) -> bool:
    """Whether two run lists share a byte (True when either could not be listed)."""
    if a is None or b is None:
        return True
    starts_a, length_a = a
    starts_b, length_b = b
    before = np.searchsorted(starts_a, starts_b + length_b, side="left") - 1
    valid = before >= 0
    return bool(np.any(starts_a[before[valid]] + length_a > starts_b[valid]))


# --- 0. cores ------------------------------------------------------------------------------

ROW_SPLIT: dict[str, tuple[str, ...] | None] = {
    "rope": ("input", "positions", "out"),
    "gather": ("input", "out"),
    "rms_norm": ("input", "out"),
    "layer_norm": ("input", "out"),
    "add_rms_norm": ("lhs", "rhs", "sum", "out"),
    "online_softmax": ("scores", "probs", "max", "sum", "corr"),
    "topk": ("input", "values", "indices"),
    "head_norm": ("input", "out"),
}
"""Operands split along their first dim when a row-wise vector op spreads over cores;
elementwise ops (absent here) split every operand whose first dim is the output's."""
ROW_SPLIT_MIN = 4096
"""Elements below which a vector op stays on one core (dispatch costs more than it saves)."""


def sliced(operand: Operand, dim: int, start: int, count: int) -> Operand:
    sizes = list(operand.sizes)
    sizes[dim] = count
    return dataclasses.replace(operand, base=operand.base + start * operand.strides[dim], sizes=tuple(sizes))


def chunks(total: int, parts: int, granule: int) -> list[tuple[int, int]]:
    size = -(-total // parts)
    size = -(-size // granule) * granule
    return [(start, min(size, total - start)) for start in range(0, total, size)]


def split_instr(instr: Instr, cores: int, target: TargetDescriptor) -> list[Instr]:
    """`instr` as one instruction per core, each on a slice of the output (or itself)."""
    op = instr.op
    if op.mnemonic == "matmul":
        out = instr.operands[-1]
        assert out is not None
        n = out.sizes[-1]
        granule = target.matmul_tile.n
        if n < cores * granule:
            return [instr]
        transpose = bool(instr.value("transpose_b"))
        pieces = []
        for core, (start, count) in enumerate(chunks(n, cores, granule)):
            operands: list[Operand | None] = []
            for name, operand in zip(op.operands, instr.operands):
                if operand is None or name == "lhs":
                    operands.append(operand)
                elif name == "rhs":
                    operands.append(sliced(operand, len(operand.sizes) - (2 if transpose else 1), start, count))
                elif name in ("scales", "zeros"):
                    operands.append(sliced(operand, len(operand.sizes) - 2, start, count))
                elif operand.sizes[-1] == 1:  # a broadcast bias
                    operands.append(operand)
                else:
                    operands.append(sliced(operand, len(operand.sizes) - 1, start, count))
            pieces.append(dataclasses.replace(instr, core=core, operands=tuple(operands)))
        return pieces
    if op.engine != "vector":
        return [instr]
    out = instr.operand(sorted(op.outputs, key=op.operands.index)[0])
    assert out is not None
    rows = out.sizes[0]
    if rows < cores or out.numel < ROW_SPLIT_MIN or len(out.sizes) < 2:
        return [instr]
    names = ROW_SPLIT.get(op.mnemonic)
    pieces = []
    for core, (start, count) in enumerate(chunks(rows, cores, 1)):
        operands = []
        for name, operand in zip(op.operands, instr.operands):
            split = (
                operand is not None
                and (name in names if names is not None else len(operand.sizes) == len(out.sizes) and operand.sizes[0] == rows)
            )
            operands.append(sliced(operand, 0, start, count) if split else operand)  # type: ignore[arg-type]  # split is only true when operand is not None
        pieces.append(dataclasses.replace(instr, core=core, operands=tuple(operands)))
    return pieces


def place_cores(body: Sequence[Node], target: TargetDescriptor) -> list[Node]:
    """Spread big matmuls (along N) and big row-wise vector ops (along rows) over the
    model's cores; DMAs stay on core 0's channels (DDR is shared by all cores)."""
    if target.cores == 1:
        return list(body)
    result: list[Node] = []
    for node in body:
        if isinstance(node, Loop):
            result.append(Loop(node.trips, place_cores(node.body, target)))
        else:
            result.extend(split_instr(node, target.cores, target))
    return result


# --- 1. queues -----------------------------------------------------------------------------


def assign_queues(body: Sequence[Node], target: TargetDescriptor, float_matmul_on_conv: bool = False) -> list[Node]:
    channels = target.dma_channels_per_core
    load_channels = max(channels - 1, 1)
    store_channel = channels - 1
    by_buffer: dict[tuple[int, int], int] = {}

    def visit(nodes: Sequence[Node]) -> list[Node]:
        result: list[Node] = []
        for node in nodes:
            if isinstance(node, Loop):
                result.append(Loop(node.trips, visit(node.body)))
                continue
            engine = node.op.engine
            if engine == "matrix":
                on_conv = float_matmul_on_conv and node.value("format") == "float"
                queue = isa.CONV_QUEUE if on_conv else isa.MATRIX_QUEUE
            elif engine == "vector":
                queue = isa.VECTOR_QUEUE
            elif node.op.mnemonic == "dma_store":
                queue = store_channel
            else:
                dst = node.operand("dst")
                assert dst is not None
                key = (dst.space, dst.base)
                queue = by_buffer.setdefault(key, len(by_buffer) % load_channels)
            result.append(dataclasses.replace(node, queue=queue, wait=0, signal=None))
        return result

    return visit(body)


# --- 2. order --------------------------------------------------------------------------------


def reorder(body: list[Node], conflicts: np.ndarray) -> list[Node]:
    """List-schedule every block: loads first, never across a conflicting node."""
    counter = [0]

    def members(node: Node) -> list[int]:
        if isinstance(node, Loop):
            return [i for inner in node.body for i in members(inner)]
        index = counter[0]
        counter[0] += 1
        return [index]

    # Text-order indices of each node's instructions (same numbering as `flatten`).
    def index_tree(nodes: Sequence[Node]) -> list[tuple[Node, list[int], object]]:
        tree: list[tuple[Node, list[int], object]] = []
        for node in nodes:
            if isinstance(node, Loop):
                start = counter[0]
                inner = index_tree(node.body)
                tree.append((node, list(range(start, counter[0])), inner))
            else:
                tree.append((node, members(node), None))
        return tree

    def schedule_block(tree: list[tuple[Node, list[int], object]]) -> list[Node]:
        nodes: list[tuple[Node, list[int]]] = []
        for node, ids, inner in tree:
            if isinstance(node, Loop):
                nodes.append((Loop(node.trips, schedule_block(inner)), ids))  # type: ignore[arg-type]  # inner is a loop's subtree
            else:
                nodes.append((node, ids))
        m = len(nodes)
        if m <= 1:
            return [n for n, _ in nodes]
        membership = np.zeros((m, conflicts.shape[0]), np.int32)
        for position, (_, ids) in enumerate(nodes):
            membership[position, ids] = 1
        blocked = (membership @ conflicts.astype(np.int32) @ membership.T) > 0
        preds = [set(np.flatnonzero(blocked[j, :j]).tolist()) for j in range(m)]
        done: set[int] = set()
        order: list[int] = []
        ready = [j for j in range(m) if not preds[j]]
        while ready:
            ready.sort(key=lambda j: (0 if is_load(nodes[j][0]) else 1, j))
            j = ready.pop(0)
            order.append(j)
            done.add(j)
            ready.extend(k for k in range(j + 1, m) if k not in done and k not in ready and preds[k] <= done)
        assert len(order) == m
        return [nodes[j][0] for j in order]

    tree = index_tree(body)
    return schedule_block(tree)


def is_load(node: Node) -> bool:
    return isinstance(node, Instr) and node.op.mnemonic == "dma_load"


# --- 3. tokens -------------------------------------------------------------------------------


def assign_tokens(body: list[Node]) -> list[Node]:
    instrs, paths, trips = flatten(body)
    n = len(instrs)
    if n == 0:
        return body
    conflicts = conflict_matrix(instrs, trips)
    queues = np.asarray([i.core * 8 + i.queue for i in instrs])
    path = np.full((n, isa.MAX_DEPTH), -1)
    for position, p in enumerate(paths):
        path[position, : len(p)] = p
    shares_loop = np.zeros((n, n), bool)
    for d in range(isa.MAX_DEPTH):
        column = path[:, d]
        shares_loop |= (column[:, None] == column[None, :]) & (column[:, None] >= 0)
    earlier = np.tri(n, k=-1, dtype=bool).T  # earlier[a, b]: a before b in text
    # depends[a, b]: b must wait for a.
    depends = conflicts & (queues[:, None] != queues[None, :]) & (earlier | shares_loop)
    needed = prune(depends, queues, paths)
    signallers = sorted({a for deps in needed for a in deps})
    token = {a: t % isa.TOKENS for t, a in enumerate(signallers)}
    waits = [0] * n
    for b, deps in enumerate(needed):
        for a in deps:
            waits[b] |= 1 << token[a]
    updated = iter(
        dataclasses.replace(instr, wait=waits[position], signal=token.get(position))
        for position, instr in enumerate(instrs)
    )

    def rebuild(nodes: Sequence[Node]) -> list[Node]:
        return [Loop(node.trips, rebuild(node.body)) if isinstance(node, Loop) else next(updated) for node in nodes]

    return rebuild(body)


def prune(depends: np.ndarray, queues: np.ndarray, paths: Sequence[tuple[int, ...]]) -> list[list[int]]:
    """Per instruction, the dependencies left once those implied by in-order queues go.

    Of the text-earlier dependencies on one queue only the last is needed (its latest
    instance was dispatched after theirs). A loop-carried one (later in text, an earlier
    iteration) is implied by a text-earlier one on its queue that shares a loop with the
    waiter at least as deep as it does.
    """

    def common(a: int, b: int) -> int:
        depth = 0
        for x, y in zip(paths[a], paths[b]):
            if x != y:
                break
            depth += 1
        return depth

    result: list[list[int]] = []
    for b in range(depends.shape[0]):
        by_queue: dict[int, tuple[list[int], list[int]]] = {}
        for a in np.flatnonzero(depends[:, b]).tolist():
            by_queue.setdefault(int(queues[a]), ([], []))[0 if a < b else 1].append(a)
        keep: list[int] = []
        for before, carried in by_queue.values():
            last = max(before) if before else None
            if last is not None:
                keep.append(last)
            shared = common(last, b) if last is not None else -1
            keep.extend(c for c in carried if common(c, b) > shared)
        result.append(sorted(keep))
    return result


def schedule(program: Program, target: TargetDescriptor, float_matmul_on_conv: bool = False) -> Program:
    """Queues, order and tokens for `program` (its instructions and results unchanged)."""
    if float_matmul_on_conv and target.conv is None:
        raise AxcError(f"{target.family} has no convolution units that take float matmuls")
    body = assign_queues(place_cores(program.body, target), target, float_matmul_on_conv)
    instrs, _, trips = flatten(body)
    if instrs:
        body = reorder(body, conflict_matrix(instrs, trips))
    body = assign_tokens(body)
    return dataclasses.replace(program, body=body)
