"""`tile{target=AX650 npu-mode=NPU1}`: layer groups and `@post` from the tfm/quant level
to npu tile programs.

Tiling is a set of decisions over a whole function (which activations stay in OCM, how
big each streamed tile is), so this pass walks the IR by hand instead of rewriting op by
op. The schedule, per tensor-level op:

- linear (`tfm.linear`, `quant.linear`): weight-stationary. A loop over output-channel
  tiles loads every weight byte (with its scales, zeros and bias) exactly once per call;
  the activation stays in OCM (decode) or is streamed in row tiles inside that loop
  (prefill, when it lives in DDR). When even the narrowest full-K tile does not fit, K is
  tiled too and products accumulate in an fp32 tile.
- attention: per KV head, an online-softmax loop over KV-cache tiles reads the cache once
  per query tile (one query tile unless OCM is short), then the new rows; GQA query heads
  of one KV head are a batch of the same matmuls; the additive mask is added per tile.
- norms, rope, activations, residual adds, casts: vector ops on whole OCM buffers, or on
  row tiles when an operand lives in DDR.

Every activation gets a home: OCM unless the live activations at some point exceed half
of OCM, in which case the largest live ones move to DDR scratch. The gate/up products of
a gated MLP count as free: `fuse` turns them into tiles. Tile sizes come from the target
descriptor: a streamed weight tile takes at most 1/8 of OCM (it is double-buffered, and
gate/up stream two), an op's other tiles at most 1/4; `ocm-bytes` overrides the capacity.

Functions that differ only in parameter keys (the layers of a model) are lowered once
and re-bound (`axc.structure`).

```mlir
npu.loop %n = 0 to 7 {
  npu.dma_load %wq[114688 * %n : 128x896] -> %w0 : tensor<896x896xi8>, !npu.buf<128x896xi8, ocm>
  npu.dma_load %sq[128 * %n : 128] -> %s0 : tensor<896xbf16>, !npu.buf<128x1xbf16, ocm>
  npu.matmul %h, %w0 scales(%s0) -> %q[128 * %n : 1x128 : 896x1] {format = "s8", transpose_b} : ...
}
```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float8E4M3FNType,
    Float8E5M2Type,
    IntegerType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass

from axc.dialects import npu, quant, tfm
from axc.dialects.axc import ParamOp
from axc.dialects.npu import DDR, OCM, Access, Affine, element_bits, float_prop, int_prop
from axc.errors import AxcError
from axc.npu_builder import Emitter, rows
from axc.quantization import WeightSpec
from axc.structure import transform_once
from axc.targets import TargetDescriptor, check_weight_type, get_target

MASK_FILL = -1.0e30
"""Initial running max of online softmax (below any score plus the -65536 mask)."""


# --- budgets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """OCM capacity and granularity of one target."""

    ocm: int
    alignment: int
    gran_m: int
    gran_n: int
    gran_k: int

    @staticmethod
    def of(target: TargetDescriptor, ocm_bytes: int = 0) -> Budget:
        tile = target.matmul_tile
        # One model core's OCM: tiles are placed in one core's memory (cores split work later).
        capacity = ocm_bytes or target.ocm_bytes_per_core
        return Budget(capacity, target.ocm_alignment, tile.m, tile.n, tile.k)

    @property
    def stream(self) -> int:
        return self.ocm // 8

    @property
    def work(self) -> int:
        return self.ocm // 4

    @property
    def activations(self) -> int:
        return self.ocm // 2

    def row_tile(self, total: int, bytes_per_row: float, budget: int | None = None) -> int:
        """Rows per tile so that `bytes_per_row * rows` fits (a multiple of gran_m when possible)."""
        if bytes_per_row <= 0:
            return total
        count = int((self.work if budget is None else budget) // bytes_per_row)
        count = max(1, min(total, count))
        if count < total and count > self.gran_m:
            count -= count % self.gran_m
        return count


def nbytes(count: int, element: Attribute) -> int:
    return (count * element_bits(element) + 7) // 8


def matrix_shape(type_: Attribute) -> tuple[int, int]:
    """Tensor shapes as `[rows, cols]`: `[1, T, D]` → (T, D); token vectors `[1, T]` → (T, 1)."""
    assert isinstance(type_, TensorType)
    shape = tuple(type_.get_shape())
    if len(shape) == 2 and shape[0] == 1:
        return shape[1], 1
    return math.prod(shape[:-1]), shape[-1]


# --- values ----------------------------------------------------------------------------


@dataclass(eq=False)
class Tensor:
    """An activation `[rows, cols]` (row-major) and where it lives."""

    rows: int
    cols: int
    element: Attribute
    home: str
    value: SSAValue

    @property
    def nbytes(self) -> int:
        return nbytes(self.rows * self.cols, self.element)

    def at(self, start: Affine | int, count: int, col: Affine | int = 0, cols: int | None = None) -> Access:
        return rows(self.value, self.cols, start, count, col, cols)

    def whole(self) -> Access:
        return self.at(0, self.rows)


@dataclass(frozen=True)
class Weight:
    """A linear's weight as the DMA sees it: stored arrays in DDR and their format."""

    n: int
    k: int
    fmt: str
    group: int
    data: SSAValue
    scales: SSAValue | None = None
    zeros: SSAValue | None = None
    perm: SSAValue | None = None

    @property
    def data_cols(self) -> int:
        return math.ceil(self.k / 2) if self.fmt == "s4" else self.k

    @property
    def bits(self) -> int:
        return 4 if self.fmt == "s4" else element_bits(npu.element_of(self.data))

    def tile_bytes(self, nt: int, kt: int, bias: SSAValue | None) -> int:
        total = (nt * kt * self.bits + 7) // 8
        if self.scales is not None:
            groups = 1 if self.group == 0 else math.ceil(kt / self.group)
            per = nbytes(1, npu.element_of(self.scales)) + (1 if self.zeros is not None else 0)
            total += nt * groups * per
        if bias is not None:
            total += nbytes(nt, npu.element_of(bias))
        return total


def storage_elements(spec: WeightSpec) -> dict[str, Attribute]:
    """Element types of the stored arrays of a quant weight."""
    data: dict[str, Attribute] = {
        "s8": IntegerType(8),
        "s4": IntegerType(8, Signedness.UNSIGNED),
        "fp8_e4m3": Float8E4M3FNType(),
        "fp8_e5m2": Float8E5M2Type(),
        "bf16": BFloat16Type(),
        "fp16": Float16Type(),
        "fp32": Float32Type(),
    }
    result = {"data": data[spec.kind], "perm": IntegerType(32)}
    if spec.quantized:
        result["scales"] = quant.SCALE_TYPES[spec.scale_type]
        result["zeros"] = IntegerType(8, Signedness.UNSIGNED) if spec.kind == "s4" else IntegerType(8)
    return result


def is_widening(op: tfm.CastOp) -> bool:
    """A cast to fp32 (or to the same type) is exact: readers compute in fp32 anyway."""
    source = op.input.type.get_element_type()  # type: ignore[union-attr]
    target = op.result.type.get_element_type()  # type: ignore[union-attr]
    return target == source or isinstance(target, Float32Type)


def gated_intermediates(ops: Sequence[Operation]) -> dict[SSAValue, SSAValue]:
    """`mul(act(linear(x, Wg)), linear(x, Wu))` with single-use intermediates: the gate,
    activation and up values (→ the product) that `fuse` keeps as tiles."""
    found: dict[SSAValue, SSAValue] = {}
    linears = (tfm.LinearOp, quant.LinearOp)
    for op in ops:
        if not isinstance(op, tfm.MulOp):
            continue
        for act_value, up in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            act = act_value.owner
            if not isinstance(act, tfm.ActOp) or not isinstance(up.owner, linears):
                continue
            gate = act.input.owner
            if not isinstance(gate, linears) or gate.input != up.owner.input:
                continue
            if all(v.has_one_use() for v in (gate.result, act.result, up)):
                for value in (gate.result, act.result, up):
                    found[value] = op.result
    return found


# --- lowering of one function ------------------------------------------------------------


@dataclass
class FunctionLowering:
    """Builds the npu version of one layer group or `@post`."""

    source: func.FuncOp
    budget: Budget
    target: TargetDescriptor
    block: Block = field(init=False)
    em: Emitter = field(init=False)
    params: list[Operation] = field(default_factory=list)
    ddr: dict[SSAValue, SSAValue] = field(default_factory=dict)
    tensors: dict[SSAValue, Tensor] = field(default_factory=dict)
    weights: dict[SSAValue, Weight] = field(default_factory=dict)
    homes: dict[SSAValue, str] = field(default_factory=dict)
    outputs: dict[SSAValue, SSAValue] = field(default_factory=dict)
    loaded: dict[SSAValue, SSAValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for type_ in (*self.source.function_type.inputs.data, *self.source.function_type.outputs.data):
            if isinstance(type_, TensorType) and DYNAMIC_INDEX in type_.get_shape():
                raise AxcError(
                    f"tile: @{self.source.sym_name.data} has dynamic shapes; run specialize-groups first"
                )
        self.block = Block(arg_types=self.source.function_type.inputs.data)
        for old, new in zip(self.source.args, self.block.args):
            new.name_hint = old.name_hint
            self.ddr[old] = new
        self.em = Emitter(self.block, alignment=self.budget.alignment)

    def fail(self, op: Operation, message: str) -> AxcError:
        return AxcError(f"tile: {op.name} in @{self.source.sym_name.data}: {message}")

    # -- planning --

    def plan(self) -> None:
        """Choose OCM or DDR for every activation (see the module docstring)."""
        ops = list(self.source.body.block.ops)
        ret = ops[-1]
        assert isinstance(ret, func.ReturnOp)
        root: dict[SSAValue, SSAValue] = {arg: arg for arg in self.source.args}
        for op in ops:
            for result in op.results:
                root[result] = result
            if isinstance(op, tfm.CastOp) and is_widening(op):
                root[op.result] = root[op.input]
        first: dict[SSAValue, int] = {}
        last: dict[SSAValue, int] = {}
        streamed: dict[SSAValue, bool] = {}
        for index, op in enumerate(ops):
            for result in op.results:
                if root[result] is result and isinstance(result.type, TensorType):
                    first.setdefault(result, index)
            if isinstance(op, tfm.CastOp) and is_widening(op):
                continue  # an alias: its readers count as readers of the root
            for position, operand in enumerate(op.operands):
                r = root.get(operand)
                if r is None or not isinstance(r.type, TensorType) or isinstance(r.owner, ParamOp):
                    continue
                first.setdefault(r, index)
                last[r] = index
                cache = isinstance(op, tfm.AttentionOp) and position >= 3
                streamed[r] = streamed.get(r, True) and cache
        fixed: dict[SSAValue, str] = {}
        for value in ret.operands:
            if not any(u.operation is not ret for u in value.uses):
                fixed[root[value]] = DDR  # only returned: produce it straight into the output
        for r, only_streamed in streamed.items():
            if only_streamed:
                fixed[r] = DDR
        gated = gated_intermediates(ops)
        sizes = {r: nbytes(math.prod(matrix_shape(r.type)), r.type.get_element_type()) for r in first}  # type: ignore[union-attr]
        for op in ops:
            # A top-k sees its whole row at once: keep the logits on chip if they fit at all.
            if isinstance(op, tfm.TopKOp) and sizes.get(root[op.input], 0) <= self.budget.ocm * 3 // 4:
                fixed[root[op.input]] = OCM
        for attempt in range(2):
            free = {r for r in gated if r in first and gated[r] not in fixed} if attempt == 0 else set()
            homes = {r: fixed.get(r, OCM) for r in first}
            for _ in range(len(homes)):
                peak, at = 0, -1
                live_at: list[SSAValue] = []
                for index in range(len(ops)):
                    live = [
                        r for r in homes
                        if homes[r] == OCM and r not in free and first[r] <= index <= last.get(r, first[r])
                    ]
                    total = sum(sizes[r] for r in live)
                    if total > peak:
                        peak, at, live_at = total, index, live
                if peak <= self.budget.activations or at < 0:
                    break
                victim = max((r for r in live_at if r not in fixed), key=lambda r: sizes[r], default=None)
                if victim is None:
                    break
                homes[victim] = DDR
            if all(homes.get(gated[r]) == OCM for r in free):
                break
        self.homes = {value: homes[root[value]] for value in root if root[value] in homes}
        for r in free:
            self.homes[r] = OCM

    # -- values --

    def tensor(self, value: SSAValue) -> Tensor:
        """The activation behind a tfm value; an input planned for OCM is loaded at first use."""
        if value in self.tensors:
            return self.tensors[value]
        if value not in self.ddr:
            raise AxcError(f"tile: value {value} has no lowering")
        source = self.ddr[value]
        r, c = matrix_shape(value.type)
        element = value.type.get_element_type()  # type: ignore[union-attr]
        if self.homes.get(value, DDR) == OCM:
            buffer = self.em.alloc((r, c), element, name=source.name_hint)
            self.em.access(npu.DmaLoadOp, {"src": Access(source, Affine(), (r, c)), "dst": buffer})
            t = Tensor(r, c, element, OCM, buffer)
        else:
            t = Tensor(r, c, element, DDR, source)
        self.tensors[value] = t
        return t

    def result(self, value: SSAValue) -> Tensor:
        """A new activation for `value`, in its planned home."""
        r, c = matrix_shape(value.type)
        element = value.type.get_element_type()  # type: ignore[union-attr]
        home = self.homes.get(value, OCM)
        name = value.name_hint or (value.owner.name.split(".")[-1] if isinstance(value.owner, Operation) else None)
        if home == OCM:
            buffer = self.em.alloc((r, c), element, name=name)
        elif value in self.outputs:
            buffer = self.outputs[value]
        else:
            buffer = self.em.alloc((r, c), element, DDR, name=name)
        t = Tensor(r, c, element, home, buffer)
        self.tensors[value] = t
        return t

    def ocm_copy(self, source: SSAValue, shape: tuple[int, ...], name: str | None = None) -> SSAValue:
        """A small DDR tensor (norm weight, positions, perm) loaded into OCM once."""
        if source not in self.loaded:
            buffer = self.em.alloc(shape, npu.element_of(source), name=name or source.name_hint)
            self.em.access(npu.DmaLoadOp, {"src": Access(source, Affine(), shape), "dst": buffer})
            self.loaded[source] = buffer
        return self.loaded[source]

    # -- generic row-wise lowering --

    def rowwise(self, tensors: Sequence[tuple[Tensor, bool]], emit: Callable[[list[Access], Affine, int], None]) -> None:
        """Run `emit(accesses, first_row, count)` over whole buffers, or over row tiles
        staged through OCM when an operand lives in DDR (`bool` marks outputs)."""
        total = tensors[0][0].rows
        staged = {id(t): t for t, _ in tensors if t.home == DDR}
        if not staged:
            emit([t.whole() for t, _ in tensors], Affine(), total)
            return
        per_row = sum(nbytes(t.cols, t.element) for t in staged.values())
        count = self.budget.row_tile(total, per_row)
        tiles = {key: self.em.alloc((count, t.cols), t.element) for key, t in staged.items()}

        def body(start: Affine, n: int) -> None:
            accesses: list[Access] = []
            loaded: set[int] = set()
            for t, is_out in tensors:
                if t.home == OCM:
                    accesses.append(t.at(start, n))
                    continue
                tile = rows(tiles[id(t)], t.cols, 0, n)
                if not is_out and id(t) not in loaded:
                    self.em.access(npu.DmaLoadOp, {"src": t.at(start, n), "dst": tile})
                    loaded.add(id(t))
                accesses.append(tile)
            emit(accesses, start, n)
            for t, is_out in tensors:
                if is_out and t.home == DDR:
                    self.em.access(npu.DmaStoreOp, {"src": rows(tiles[id(t)], t.cols, 0, n), "dst": t.at(start, n)})

        self.em.tiles(total, count, body, "r")

    # -- ops --

    def lower_op(self, op: Operation) -> None:
        if isinstance(op, ParamOp):
            clone = op.clone()
            self.params.append(clone)
            self.ddr[op.result] = clone.result
        elif isinstance(op, quant.WeightOp):
            self.weight_op(op)
        elif isinstance(op, tfm.CastOp):
            self.cast(op)
        elif isinstance(op, tfm.RMSNormOp):
            self.norm(op, op.input, op.weight, None, npu.RMSNormOp)
        elif isinstance(op, tfm.LayerNormOp):
            self.norm(op, op.input, op.weight, op.bias, npu.LayerNormOp)
        elif isinstance(op, (tfm.LinearOp, quant.LinearOp)):
            self.linear(op)
        elif isinstance(op, tfm.RopeOp):
            self.rope(op)
        elif isinstance(op, tfm.AttentionOp):
            self.attention(op)
        elif isinstance(op, tfm.ActOp):
            self.elementwise(op, npu.ActOp, ("input",), kind=op.kind)
        elif isinstance(op, tfm.AddOp):
            self.elementwise(op, npu.AddOp, ("lhs", "rhs"))
        elif isinstance(op, tfm.MulOp):
            self.elementwise(op, npu.MulOp, ("lhs", "rhs"))
        elif isinstance(op, tfm.TopKOp):
            self.topk(op)
        elif isinstance(op, func.ReturnOp):
            self.finish(op)
        else:
            raise self.fail(op, "has no npu lowering (supported: linear, norms, rope, attention, act, add, mul, cast, topk)")

    def weight_op(self, op: quant.WeightOp) -> None:
        spec = op.weight_type.spec
        check_weight_type(self.target, spec.kind, f"weights ({op.data.key.data})")
        elements = storage_elements(spec)
        shapes = {
            "data": spec.data_shape,
            "scales": (spec.out_features, spec.groups) if spec.quantized else (),
            "zeros": (spec.out_features, spec.groups) if spec.quantized else (),
            "perm": (spec.in_features,),
        }
        stored = {"scales": spec.scales_shape, "zeros": spec.scales_shape}
        values: dict[str, SSAValue] = {}
        for role, param in op.params().items():
            shape = stored.get(role, shapes[role])
            param_op = ParamOp(param, TensorType(elements[role], shape))
            param_op.result.name_hint = op.result.name_hint
            self.params.append(param_op)
            values[role] = param_op.result
        self.weights[op.result] = Weight(
            spec.out_features,
            spec.in_features,
            spec.kind if spec.quantized else "float",
            spec.group,
            values["data"],
            values.get("scales"),
            values.get("zeros"),
            values.get("perm"),
        )

    def plain_weight(self, value: SSAValue) -> Weight:
        if value in self.weights:
            return self.weights[value]
        n, k = tuple(value.type.get_shape())  # type: ignore[union-attr]
        return Weight(n, k, "float", 0, self.ddr[value])

    def cast(self, op: tfm.CastOp) -> None:
        if is_widening(op):
            self.tensors[op.result] = self.tensor(op.input)
            return
        x = self.tensor(op.input)
        y = self.result(op.result)
        self.rowwise([(x, False), (y, True)], lambda a, s, n: self.em.access(npu.CastOp, {"input": a[0], "out": a[1]}))

    def norm(self, op: Operation, input: SSAValue, weight: SSAValue, bias: SSAValue | None, cls: type[npu.AccessOp]) -> None:
        x = self.tensor(input)
        w = self.ocm_copy(self.ddr[weight], (x.cols,))
        b = self.ocm_copy(self.ddr[bias], (x.cols,)) if bias is not None else None
        y = self.result(op.results[0])
        eps = op.eps  # type: ignore[attr-defined]
        names = {"input": None, "weight": w, "bias": b}

        def emit(a: list[Access], start: Affine, n: int) -> None:
            self.em.access(cls, {**names, "input": a[0], "out": a[1]}, eps=eps)

        self.rowwise([(x, False), (y, True)], emit)

    def elementwise(self, op: Operation, cls: type[npu.AccessOp], names: tuple[str, ...], **props: Attribute) -> None:
        inputs = [self.tensor(v) for v in op.operands]
        y = self.result(op.results[0])

        def emit(a: list[Access], start: Affine, n: int) -> None:
            self.em.access(cls, {**dict(zip(names, a)), "out": a[-1]}, **props)

        self.rowwise([*((t, False) for t in inputs), (y, True)], emit)

    def rope(self, op: tfm.RopeOp) -> None:
        x = self.tensor(op.input)
        pos_type = op.positions.type
        count = matrix_shape(pos_type)[0]
        positions = self.ocm_copy(self.ddr_of(op.positions), (count,), name="positions")
        y = self.result(op.result)
        props = {
            name: op.properties[name]
            for name in (
                "num_heads", "head_dim", "rotary_dim", "theta", "scaling", "factor",
                "low_freq_factor", "high_freq_factor", "original_max_positions",
            )
            if name in op.properties
        }

        def emit(a: list[Access], start: Affine, n: int) -> None:
            self.em.access(
                npu.RopeOp,
                {"input": a[0], "positions": Access(positions, start, (n,), (1,)), "out": a[1]},
                **props,
            )

        self.rowwise([(x, False), (y, True)], emit)

    def ddr_of(self, value: SSAValue) -> SSAValue:
        """The DDR value behind an argument (through widening casts)."""
        if value in self.ddr:
            return self.ddr[value]
        owner = value.owner
        if isinstance(owner, tfm.CastOp):
            return self.ddr_of(owner.input)
        raise AxcError(f"tile: {value} is not a function argument")

    def topk(self, op: tfm.TopKOp) -> None:
        x = self.tensor(op.input)
        if x.home != OCM:
            raise self.fail(
                op,
                f"needs its {x.cols} inputs in OCM ({x.nbytes} bytes, more than 3/4 of {self.budget.ocm}); "
                "a streaming top-k is not implemented, build without post top-k",
            )
        for value in (op.values, op.indices):
            self.homes[value] = OCM  # k entries per row; stored to DDR by `finish` if returned
        values, indices = self.result(op.values), self.result(op.indices)
        self.em.access(npu.TopKOp, {"input": x.whole(), "values": values.whole(), "indices": indices.whole()}, k=op.k)

    # -- linear --

    def weight_tile(self, w: Weight, bias: SSAValue | None) -> tuple[int, int]:
        """(N tile, K tile) of a streamed weight: full K when any N tile fits."""
        budget, gran = self.budget.stream, self.budget.gran_n
        if w.tile_bytes(w.n, w.k, bias) <= budget:
            return w.n, w.k
        if w.tile_bytes(min(gran, w.n), w.k, bias) <= budget:
            fitting = [d for d in range(gran, w.n + 1, gran) if w.tile_bytes(d, w.k, bias) <= budget]
            dividing = [d for d in fitting if w.n % d == 0]
            return (dividing or fitting)[-1], w.k
        nt = min(gran, w.n)
        quantum = math.lcm(self.budget.gran_k, w.group or 1, 2 if w.fmt == "s4" else 1)
        fitting = [d for d in range(quantum, w.k, quantum) if w.k % d == 0 and w.tile_bytes(nt, d, bias) <= budget]
        return nt, (fitting[-1] if fitting else w.k)

    def linear(self, op: tfm.LinearOp | quant.LinearOp) -> None:
        w = self.weights[op.weight] if isinstance(op, quant.LinearOp) else self.plain_weight(op.weight)
        bias = self.ddr[op.bias] if op.bias is not None else None
        x = self.tensor(op.input)
        if w.perm is not None:
            x = self.gather(op, x, w.perm)
        y = self.result(op.result)
        nt, kt = self.weight_tile(w, bias)
        m, k = x.rows, w.k
        split_k = kt < k
        data_element = npu.element_of(w.data)
        per_row = (0 if x.home == OCM else nbytes(kt, x.element)) + (0 if y.home == OCM else nbytes(nt, y.element))
        mt = m if per_row == 0 else self.budget.row_tile(m, per_row + (nt * 4 if split_k else 0))
        div = 2 if w.fmt == "s4" else 1
        groups = 0 if w.scales is None else (1 if w.group == 0 else math.ceil(kt / w.group))
        all_groups = 0 if w.scales is None else (1 if w.group == 0 else math.ceil(k / w.group))
        wt = self.em.alloc((nt, math.ceil(kt / div)), data_element, name="w")
        st = self.em.alloc((nt, groups), npu.element_of(w.scales), name="s") if w.scales is not None else None
        zt = self.em.alloc((nt, groups), npu.element_of(w.zeros), name="z") if w.zeros is not None else None
        bt = self.em.alloc((1, nt), npu.element_of(bias), name="b") if bias is not None else None
        xt = self.em.alloc((mt, kt), x.element, name="x") if x.home == DDR else None
        yt = self.em.alloc((mt, nt), y.element, name="y") if y.home == DDR else None
        acc = self.em.alloc((m, nt), f32, name="acc") if split_k else None
        props: dict[str, Attribute] = {"transpose_b": UnitAttr()}
        if w.fmt != "float":
            props["format"] = StringAttr(w.fmt)
            props["group"] = int_prop(w.group)

        def load_scales(n0: Affine, ns: int, k0: Affine, ks: int) -> dict[str, Access | SSAValue | None]:
            operands: dict[str, Access | SSAValue | None] = {}
            g0 = Affine() if w.group == 0 else k0 // w.group
            ng = 1 if w.group == 0 else math.ceil(ks / w.group)
            for role, buffer in (("scales", st), ("zeros", zt)):
                source = getattr(w, role)
                if source is None or buffer is None:
                    continue
                tile = rows(buffer, groups, 0, ns, 0, ng)
                self.em.access(npu.DmaLoadOp, {"src": rows(source, all_groups, n0, ns, g0, ng), "dst": tile})
                operands[role] = tile
            return operands

        def load_weights(n0: Affine, ns: int, k0: Affine, ks: int) -> dict[str, Access | SSAValue | None]:
            cols = math.ceil(ks / div)
            tile = rows(wt, math.ceil(kt / div), 0, ns, 0, cols)
            self.em.access(npu.DmaLoadOp, {"src": rows(w.data, w.data_cols, n0, ns, k0 // div, cols), "dst": tile})
            operands: dict[str, Access | SSAValue | None] = {"rhs": tile}
            if w.group or not split_k:  # per-channel scales of a K-split tile load once per N tile
                operands.update(load_scales(n0, ns, k0, ks))
            return operands

        def x_rows(m0: Affine, ms: int, k0: Affine, ks: int) -> Access:
            if x.home == OCM:
                return x.at(m0, ms, k0, ks)
            assert xt is not None
            tile = rows(xt, kt, 0, ms, 0, ks)
            self.em.access(npu.DmaLoadOp, {"src": x.at(m0, ms, k0, ks), "dst": tile})
            return tile

        def write(m0: Affine, ms: int, n0: Affine, ns: int, compute: Callable[[Access], None]) -> None:
            if y.home == OCM:
                compute(y.at(m0, ms, n0, ns))
                return
            assert yt is not None
            tile = rows(yt, nt, 0, ms, 0, ns)
            compute(tile)
            self.em.access(npu.DmaStoreOp, {"src": tile, "dst": y.at(m0, ms, n0, ns)})

        def load_bias(n0: Affine, ns: int) -> Access | None:
            if bias is None or bt is None:
                return None
            self.em.access(npu.DmaLoadOp, {"src": Access(bias, n0, (1, ns)), "dst": rows(bt, nt, 0, 1, 0, ns)})
            return rows(bt, nt, 0, 1, 0, ns)

        def n_tile(n0: Affine, ns: int) -> None:
            if not split_k:
                operands = load_weights(n0, ns, Affine(), k)
                operands["bias"] = load_bias(n0, ns)

                def m_tile(m0: Affine, ms: int) -> None:
                    lhs = x_rows(m0, ms, 0, k)
                    write(m0, ms, n0, ns, lambda out: self.em.access(npu.MatmulOp, {"lhs": lhs, **operands, "out": out}, **props))

                self.em.tiles(m, mt, m_tile, "m")
                return
            assert acc is not None
            self.em.access(npu.FillOp, {"out": rows(acc, nt, 0, m, 0, ns)}, value=float_prop(0.0))
            channel_scales = load_scales(n0, ns, Affine(), k) if w.group == 0 else {}

            def k_tile(k0: Affine, ks: int) -> None:
                operands = {**load_weights(n0, ns, k0, ks), **channel_scales}

                def m_tile(m0: Affine, ms: int) -> None:
                    self.em.access(
                        npu.MatmulOp,
                        {"lhs": x_rows(m0, ms, k0, ks), **operands, "out": rows(acc, nt, m0, ms, 0, ns)},
                        **props,
                        accumulate=UnitAttr(),
                    )

                self.em.tiles(m, mt, m_tile, "m")

            self.em.tiles(k, kt, k_tile, "k")
            bias_tile = load_bias(n0, ns)

            def finish(m0: Affine, ms: int) -> None:
                partial = rows(acc, nt, m0, ms, 0, ns)
                if bias_tile is None:
                    write(m0, ms, n0, ns, lambda out: self.em.access(npu.CastOp, {"input": partial, "out": out}))
                else:
                    write(m0, ms, n0, ns, lambda out: self.em.access(npu.AddOp, {"lhs": partial, "rhs": bias_tile, "out": out}))

            self.em.tiles(m, mt, finish, "m")

        self.em.tiles(w.n, nt, n_tile, "n")

    def gather(self, op: Operation, x: Tensor, perm: SSAValue) -> Tensor:
        indices = self.ocm_copy(perm, (x.cols,), name="perm")
        r, c = x.rows, x.cols
        home = OCM if x.home == OCM else DDR
        buffer = self.em.alloc((r, c), x.element, home, name="gathered")
        y = Tensor(r, c, x.element, home, buffer)

        def emit(a: list[Access], start: Affine, n: int) -> None:
            self.em.access(npu.GatherOp, {"input": a[0], "indices": indices, "out": a[1]})

        self.rowwise([(x, False), (y, True)], emit)
        return y

    # -- attention --

    def attention(self, op: tfm.AttentionOp) -> None:
        heads, kv_heads = op.num_heads.value.data, op.num_kv_heads.value.data
        d = op.head_dim.value.data
        group = heads // kv_heads
        scale = op.scale.value.data
        q, k_new, v_new = (self.tensor(v) for v in (op.query, op.key, op.value))
        k_cache, v_cache, mask = (self.ddr_of(v) for v in (op.key_cache, op.value_cache, op.mask))
        out = self.result(op.result)
        tokens = q.rows
        history = npu.ddr_shape(k_cache)[1]
        width = kv_heads * d
        total = history + tokens
        cache_element, mask_element = npu.element_of(k_cache), npu.element_of(mask)
        # Query tile: all tokens unless the per-head state does not fit the work budget.
        state_row = group * (d + 3) * 4 + group * tokens * 4 + nbytes(total, mask_element)
        if q.home == DDR:
            state_row += nbytes(q.cols, q.element)
        if out.home == DDR:
            state_row += nbytes(out.cols, out.element)
        tq = self.budget.row_tile(tokens, state_row, self.budget.work // 2)
        mask_rows_fit = nbytes(tq * total, mask_element) <= self.budget.work // 4
        # KV tile: what is left of the work budget for K, V, scores and mask tiles.
        fixed = tq * state_row - (nbytes(tq * total, mask_element) if not mask_rows_fit else 0)
        per_key = 2 * nbytes(d, cache_element) + group * tq * 4 + (0 if mask_rows_fit else nbytes(tq, mask_element))
        st = max(1, min(history, (self.budget.work - fixed) // per_key))
        if st < history and st > self.budget.gran_n:
            st -= st % self.budget.gran_n
        kt = self.em.alloc((st, d), cache_element, name="k")
        vt = self.em.alloc((st, d), cache_element, name="v")
        width_scores = max(st, tokens)
        scores = self.em.alloc((group, tq, width_scores), f32, name="scores")
        m_run = self.em.alloc((group, tq, 1), f32, name="max")
        l_run = self.em.alloc((group, tq, 1), f32, name="sum")
        corr = self.em.alloc((group, tq, 1), f32, name="corr")
        acc = self.em.alloc((group, tq, d), f32, name="acc")
        mask_buf = self.em.alloc((tq, total) if mask_rows_fit else (tq, max(st, tokens)), mask_element, name="mask")
        qt = self.em.alloc((tq, q.cols), q.element, name="q") if q.home == DDR else None
        ot = self.em.alloc((tq, out.cols), out.element, name="o") if out.home == DDR else None
        kn = self.em.alloc((tokens, d), k_new.element, name="k_new") if k_new.home == DDR else None
        vn = self.em.alloc((tokens, d), v_new.element, name="v_new") if v_new.home == DDR else None

        def scores_view(cols: int) -> Access:
            return Access(scores, Affine(), (group, tq, cols), (tq * width_scores, width_scores, 1))

        def query_tile(q0: Affine, nq: int) -> None:
            if qt is not None:
                self.em.access(npu.DmaLoadOp, {"src": q.at(q0, nq), "dst": rows(qt, q.cols, 0, nq)})
            if mask_rows_fit:
                self.em.access(
                    npu.DmaLoadOp,
                    {"src": rows(mask, total, q0, nq), "dst": rows(mask_buf, total, 0, nq)},
                )
            q_base, q_stride = (qt, q.cols) if qt is not None else (q.value, q.cols)
            o_base = ot if ot is not None else out.value
            assert q_base is not None and o_base is not None

            def step(h: Affine, keys: Access, values: Access, mask_tile: Access, cols: int) -> None:
                s = scores_view(cols)
                s = Access(s.value, s.offset, (group, nq, cols), s.strides)
                query = Access(
                    q_base,
                    (Affine() if qt is not None else q0 * q.cols) + h * (group * d),
                    (group, nq, d),
                    (d, q_stride, 1),
                )
                self.em.access(
                    npu.MatmulOp,
                    {"lhs": query, "rhs": keys, "out": s},
                    transpose_b=UnitAttr(),
                    alpha=float_prop(scale),
                )
                self.em.access(npu.AddOp, {"lhs": s, "rhs": mask_tile, "out": s})
                state = {name: Access(buf, Affine(), (group, nq, 1), (tq, 1, 1)) for name, buf in (("max", m_run), ("sum", l_run), ("corr", corr))}
                self.em.access(npu.OnlineSoftmaxOp, {"scores": s, "probs": s, **state})
                acc_view = Access(acc, Affine(), (group, nq, d), (tq * d, d, 1))
                self.em.access(npu.MulOp, {"lhs": acc_view, "rhs": state["corr"], "out": acc_view})
                self.em.access(npu.MatmulOp, {"lhs": s, "rhs": values, "out": acc_view}, accumulate=UnitAttr())

            def mask_part(start: Affine, cols: int) -> Access:
                if mask_rows_fit:
                    return Access(mask_buf, start, (nq, cols), (total, 1))
                tile = Access(mask_buf, Affine(), (nq, cols), (mask_buf.type.get_shape()[1], 1))  # type: ignore[union-attr]
                self.em.access(npu.DmaLoadOp, {"src": Access(mask, q0 * total + start, (nq, cols), (total, 1)), "dst": tile})
                return tile

            def head(h_iv: Affine, _: int) -> None:
                h = h_iv
                for buf, value in ((m_run, MASK_FILL), (l_run, 0.0), (acc, 0.0)):
                    shape = buf.type.get_shape()  # type: ignore[union-attr]
                    self.em.access(npu.FillOp, {"out": Access(buf, Affine(), (shape[0], nq, shape[2]), (tq * shape[2], shape[2], 1))}, value=float_prop(value))

                def cache_tile(t0: Affine, ns: int) -> None:
                    keys, values = rows(kt, d, 0, ns), rows(vt, d, 0, ns)
                    for source, tile in ((k_cache, keys), (v_cache, values)):
                        self.em.access(npu.DmaLoadOp, {"src": rows(source, width, t0, ns, h * d, d), "dst": tile})
                    step(h, keys, values, mask_part(t0, ns), ns)

                self.em.tiles(history, st, cache_tile, "t")
                new = []
                for t, staged in ((k_new, kn), (v_new, vn)):
                    if staged is None:
                        new.append(t.at(0, tokens, h * d, d))
                    else:
                        self.em.access(npu.DmaLoadOp, {"src": t.at(0, tokens, h * d, d), "dst": staged})
                        new.append(rows(staged, d, 0, tokens))
                step(h, new[0], new[1], mask_part(Affine(history), tokens), tokens)
                o_offset = (Affine() if ot is not None else q0 * out.cols) + h * (group * d)
                self.em.access(
                    npu.DivOp,
                    {
                        "lhs": Access(acc, Affine(), (group, nq, d), (tq * d, d, 1)),
                        "rhs": Access(l_run, Affine(), (group, nq, 1), (tq, 1, 1)),
                        "out": Access(o_base, o_offset, (group, nq, d), (d, out.cols, 1)),
                    },
                )

            self.em.tiles(kv_heads, 1, head, "h")
            if ot is not None:
                self.em.access(npu.DmaStoreOp, {"src": rows(ot, out.cols, 0, nq), "dst": out.at(q0, nq)})

        self.em.tiles(tokens, tq, query_tile, "q")

    # -- results --

    def finish(self, op: func.ReturnOp) -> None:
        results: list[SSAValue] = []
        for value in op.operands:
            t = self.tensors.get(value)
            buffer = self.outputs.get(value)
            if t is not None and buffer is not None and t.home == OCM and t.element == npu.element_of(buffer):
                self.em.access(npu.DmaStoreOp, {"src": t.whole(), "dst": Access(buffer, Affine(), (t.rows, t.cols))})
            elif t is None or buffer is None or t.value is not buffer:
                source = self.tensor(value)
                copy = self.em.alloc(tuple(value.type.get_shape()), value.type.get_element_type(), DDR, name="out")  # type: ignore[union-attr]
                target = Tensor(source.rows, source.cols, copy.type.element_type, DDR, copy)  # type: ignore[union-attr]
                self.rowwise([(source, False), (target, True)], lambda a, s, n: self.em.access(npu.CastOp, {"input": a[0], "out": a[1]}))
                buffer = copy
            to_tensor = npu.ToTensorOp.create(operands=[buffer], result_types=[value.type])
            self.em.emit(to_tensor)
            results.append(to_tensor.results[0])
        self.em.emit(func.ReturnOp(*results))

    def run(self) -> func.FuncOp:
        self.plan()
        ret = self.source.body.block.last_op
        assert isinstance(ret, func.ReturnOp)
        for value in ret.operands:
            if isinstance(value.owner, Operation) and value not in self.outputs and not isinstance(value.owner, ParamOp):
                shape = tuple(value.type.get_shape())  # type: ignore[union-attr]
                self.outputs[value] = self.em.alloc(shape, value.type.get_element_type(), DDR, name="out")  # type: ignore[union-attr]
        for op in list(self.source.body.block.ops):
            self.lower_op(op)
        body = list(self.block.ops)
        for op in body:
            op.detach()
        for op in (*self.params, *self.em.allocs, *body):
            self.block.add_op(op)
        function = func.FuncOp(
            self.source.sym_name.data,
            self.source.function_type,
            Region(self.block),
        )
        function.attributes.update(self.source.attributes)
        return function


@dataclass(frozen=True)
class Tile(ModulePass):
    """Lower every layer group and `@post` to npu tile programs for one target."""

    name: ClassVar[str] = "tile"

    target: str = "AX650"
    npu_mode: str = "NPU1"
    ocm_bytes: int = 0
    """Override the descriptor's OCM capacity per core (what-if studies, tests)."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        descriptor = get_target(self.target, self.npu_mode)
        budget = Budget.of(descriptor, self.ocm_bytes)
        functions = [
            f for f in op.ops
            if isinstance(f, func.FuncOp) and ("axc.group" in f.attributes or f.sym_name.data == "post")
        ]
        transform_once(op, functions, lambda f: FunctionLowering(f, budget, descriptor).run())
        op.attributes["axc.target"] = StringAttr(descriptor.chip)
        op.attributes["axc.npu_mode"] = StringAttr(descriptor.npu_mode)
        op.attributes["npu.ocm_capacity"] = int_prop(budget.ocm)
