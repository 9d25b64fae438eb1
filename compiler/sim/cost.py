"""The cost model: per-engine busy time, DDR bytes and the latency of one shape group.

Replays the command stream's dynamic instruction sequence on a timing model of the
target descriptor (no numerics):

- the command processor dispatches one instruction every `DISPATCH_CYCLES`, in order;
- each queue (4 DMA channels, the matrix engine, the vector engine and the convolution
  units of each core) runs its instructions in order; an instruction starts when its
  queue is free and every earlier-dispatched signaller of a token it waits on has
  finished (`isa.Instr.wait`);
- a DMA pays `DMA_SETUP_CYCLES`, then moves its bytes at the channel's port rate while
  DDR, shared by all channels and cores, serves one transfer at a time at
  `ddr_bytes_per_s * ddr_efficiency` (fitted). DDR moves whole
  `ddr_alignment`-byte bursts, so a strided box of short rows costs more than its bytes;
- a matmul takes its MACs, padded to the matrix tile (`matmul_tile`), at the engine's
  16-bit rate (weights are decoded to the activations' type: w8a16, w4a16); that rate,
  `half_rate` of INT8, is stated per chip (not fitted); a float matmul on the convolution units (`c<k>.cv`,
  FLOAT_MATMUL_USE_CONV_EU) runs at their rate (`conv_matmul_rate` x the matrix engine's);
  on a chip without an int4 multiply, an s4 matmul expands its weight tile to 16 bits at
  `unpack_weights_per_s` (per chip, derived from published figures, not fitted) as it feeds
  the array: the expansion takes the place of the first row block (`matmul_tile.m` rows)
  and the other blocks reuse the expanded tile, so it adds to a prefill's MACs and bounds a
  decode step's (one block);
- a vector op takes `OPS_PER_ELEMENT[op] * elements` at the engine's rate for its widest
  float type (fp32 at half rate);
- every call of a group costs `token_s` (fitted) per token it processes on top of its
  replay: what the vendor's runtime and kernels pay per token row beyond bytes and MACs.

```python
cost = estimate(payload.programs[1], payload.target, group_tokens(payload.model.groups[1]))
cost.latency_s, cost.busy_s["dma"], cost.ddr_bytes
```
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from axc import isa
from axc.axmodel import GroupSpec
from axc.isa import Instr, Loop, Node, Operand, Program
from axc.runtime_contract import INPUT
from axc.targets import TargetDescriptor

DISPATCH_CYCLES = 8
"""Assumed: a command processor issuing one fixed-size record per 8 cycles."""
DMA_SETUP_CYCLES = 64
"""Assumed: descriptor fetch and address generation before a transfer's first burst."""
ENGINE_SETUP_CYCLES = 16
"""Assumed: pipeline fill of the matrix and vector engines per instruction."""
OPS_PER_ELEMENT: dict[str, float] = {
    "fill": 1, "cast": 1, "add": 1, "mul": 1, "div": 2, "gather": 2,
    "act": 4, "act_mul": 5, "rms_norm": 4, "add_rms_norm": 5, "layer_norm": 7,
    "rope": 6, "online_softmax": 8, "topk": 8, "softcap": 4, "iota": 1, "window_mask": 3,
    "head_norm": 4,
}
"""Assumed: vector passes per element (exp, rsqrt and division count as a few ops).
`head_norm` makes the passes of `rms_norm` over head-sized rows: one more rsqrt per head
is under 1/64 of an op per element at head_dim >= 64."""


@dataclass(frozen=True)
class Work:
    """What one static instruction costs each time it runs."""

    queue: tuple[int, int]
    engine: str
    seconds: float
    ddr_bytes: int = 0
    ddr_seconds: float = 0.0


@dataclass
class GroupCost:
    latency_s: float = 0.0
    busy_s: dict[str, float] = field(default_factory=lambda: {"dma": 0.0, "matrix": 0.0, "vector": 0.0, "conv": 0.0})
    ddr_read: int = 0
    ddr_write: int = 0
    ddr_busy_s: float = 0.0
    instructions: int = 0
    clock_hz: float = 1e9
    fixed_s: float = 0.0

    @property
    def ddr_bytes(self) -> int:
        return self.ddr_read + self.ddr_write

    def cycles(self, seconds: float) -> int:
        return round(seconds * self.clock_hz)

    def summary(self) -> str:
        busy = ", ".join(f"{engine} {self.cycles(s)}" for engine, s in self.busy_s.items())
        return (
            f"cost model: latency {self.latency_s * 1e3:.3f} ms ({self.cycles(self.latency_s)} cycles), "
            f"busy cycles {busy}, DDR {self.ddr_bytes} B ({self.cycles(self.ddr_busy_s)} cycles busy), "
            f"{self.instructions} instructions issued"
            + (f", {self.fixed_s * 1e3:.3f} ms fixed per call" if self.fixed_s else "")
        )


def contiguous_run(operand: Operand) -> int:
    """Bytes of the longest contiguous innermost run of a strided box."""
    run = operand.itemsize
    for size, stride in zip(reversed(operand.sizes), reversed(operand.strides)):
        if size == 1:
            continue
        if stride != run:
            break
        run *= size
    return run


def ddr_burst_bytes(operand: Operand, burst: int) -> int:
    run = contiguous_run(operand)
    runs = operand.nbytes // run if run else 0
    return runs * burst * math.ceil(run / burst)


def work(instr: Instr, target: TargetDescriptor) -> Work:
    clock = target.clock_hz
    queue = (instr.core, instr.queue)
    op = instr.op
    if op.engine == "dma":
        src, dst = instr.operands
        assert src is not None and dst is not None
        ddr = dst if op.mnemonic == "dma_store" else src
        moved = ddr_burst_bytes(ddr, target.ddr_alignment)
        port = target.dma_bytes_per_s_per_core
        return Work(
            queue,
            "dma",
            DMA_SETUP_CYCLES / clock + src.nbytes / port,
            moved,
            moved / target.effective_ddr_bytes_per_s,
        )
    if op.engine == "matrix":
        lhs, out = instr.operand("lhs"), instr.operands[-1]
        assert lhs is not None and out is not None
        tile = target.matmul_tile
        rows = out.sizes[-2] if len(out.sizes) > 1 else 1
        batch = math.prod(out.sizes[:-2])
        block = batch * tile.m * math.ceil(out.sizes[-1] / tile.n) * tile.n * math.ceil(lhs.sizes[-1] / tile.k) * tile.k
        dtype = "fp16" if lhs.dtype == 9 else "bf16"
        engine = "conv" if instr.queue == isa.CONV_QUEUE else "matrix"
        rate = target.engine(engine).macs_per_cycle(dtype) * clock
        first = max(block / rate, unpack_seconds(instr, target))
        return Work(queue, engine, ENGINE_SETUP_CYCLES / clock + first + (math.ceil(rows / tile.m) - 1) * block / rate)
    elements = max(o.numel for _, o in instr.named())
    wide = any(o.dtype in (11, 12) for _, o in instr.named())
    rate = target.vector.ops_per_cycle("fp32" if wide else "bf16") * clock
    return Work(queue, "vector", ENGINE_SETUP_CYCLES / clock + OPS_PER_ELEMENT[op.mnemonic] * elements / rate)


def unpack_seconds(instr: Instr, target: TargetDescriptor) -> float:
    """The pass that expands a matmul's packed s4 right-hand tile (two weights a byte) to
    16 bits before its MACs, on chips without an int4 multiply (`unpack_weights_per_s`)."""
    rhs = instr.operand("rhs")
    if not target.unpack_weights_per_s or rhs is None or instr.value("format") != "s4":
        return 0.0
    return 2 * rhs.numel / target.unpack_weights_per_s


def group_tokens(group: GroupSpec) -> int:
    """Tokens one call of `group` processes: the rows of its `input` hidden state [1, T, hidden]."""
    for spec in group.inputs:
        if spec.name == INPUT and len(spec.shape) == 3:
            return spec.shape[1]
    return 1


def estimate(program: Program, target: TargetDescriptor, tokens: int = 1) -> GroupCost:
    """Replay `program`, a group of `tokens` tokens, on the timing model of `target` (see the module docstring)."""
    cost = GroupCost(clock_hz=target.clock_hz, fixed_s=target.token_s * tokens)
    costs: dict[int, Work] = {}
    for instr, _ in isa.walk(program.body):
        costs[id(instr)] = work(instr, target)
    dispatch_step = DISPATCH_CYCLES / target.clock_hz
    queue_free: dict[tuple[int, int], float] = {}
    token_done = [0.0] * isa.TOKENS
    state = {"dispatch": 0.0, "ddr_free": 0.0, "end": 0.0}

    def run(nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, Loop):
                for _ in range(node.trips):
                    run(node.body)
                continue
            w = costs[id(node)]
            state["dispatch"] += dispatch_step
            start = max(state["dispatch"], queue_free.get(w.queue, 0.0))
            wait = node.wait
            while wait:
                low = wait & -wait
                start = max(start, token_done[low.bit_length() - 1])
                wait ^= low
            end = start + w.seconds
            if w.ddr_bytes:
                ddr_start = max(start + DMA_SETUP_CYCLES / target.clock_hz, state["ddr_free"])
                state["ddr_free"] = ddr_start + w.ddr_seconds
                end = max(end, state["ddr_free"])
                cost.ddr_busy_s += w.ddr_seconds
                if node.op.mnemonic == "dma_store":
                    cost.ddr_write += w.ddr_bytes
                else:
                    cost.ddr_read += w.ddr_bytes
            queue_free[w.queue] = end
            if node.signal is not None:
                token_done[node.signal] = max(token_done[node.signal], end)
            cost.busy_s[w.engine] += max(w.seconds, w.ddr_seconds)
            cost.instructions += 1
            state["end"] = max(state["end"], end)

    run(program.body)
    cost.latency_s = state["end"] + cost.fixed_s
    return cost
