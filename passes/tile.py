"""`tile{target=AX650 npu-mode=NPU1}`: layer groups and `@post` from the tfm/quant level
to npu tile programs.

Tiling is a set of decisions over a whole function (which activations stay in OCM, how
big each tile is, in which order loops run), so this pass walks the IR by hand instead of
rewriting op by op:

1. Homes. Every activation lives in OCM unless the live activations at some point exceed
   `Budget.activations` of OCM (half), in which case the largest live ones move to DDR
   scratch. Each op may then use what its live neighbours leave free (its `space`).
2. Schedules (`axc.tiling`): per op, the tiles and loop order that fit its space and take
   the least time (a linear: its DDR bytes against its padded MACs), then move the fewest
   DDR bytes.
   - linear (`tfm.linear`, `quant.linear`): weight-stationary over N tiles (every weight,
     scale, zero and bias byte loaded once per call), or activation-stationary over M
     blocks when the activation lives in DDR and re-reading it per N tile would cost
     more; K is split into fp32 accumulators when that pays. A gated MLP
     (`mul(act(linear(x, Wg)), linear(x, Wu))`) is one schedule over both weights whose
     body ends in `npu.act_mul`: only tiles of the gate and up products ever exist.
   - attention: per query tile and KV head, an online-softmax loop over KV-cache tiles,
     then over tiles of the new rows; GQA query heads of one KV head are a batch of the
     same matmuls; the additive mask is added per tile.
   - norms, rope, activations, residual adds, casts: vector ops on whole OCM buffers, or
     on row tiles when an operand lives in DDR.
3. Fit. The result is placed as `allocate-ocm` would (`axc.ocm.pack`). When small
   buffers or fragmentation make it overflow, the function is lowered again with less
   kept on chip and smaller tiles (`LEVELS`), down to every activation in DDR.

The decisions are attributes of each function, so a test (or a reader) sees them beside
the loops they produced: `npu.fit_level` (the index into `LEVELS` that fit) and
`npu.schedules`, one entry per scheduled op in program order:

```mlir
func.func @layer_0_g1(...) attributes {..., npu.schedules = [
  {kind = "linear", op = "quant.linear", tiles = array<i64: 4, 16, 16>, order = "n,m", in = "ocm", out = "ocm", ddr_bytes = 320 : i64},
  {kind = "attention", op = "tfm.attention", tiles = array<i64: 4, 4>, order = "q,h,kv", in = "ocm", out = "ocm", mask = "rows", ddr_bytes = 32 : i64},
  {kind = "rows", op = "tfm.add", tiles = array<i64: 4>, order = "r"}], npu.fit_level = 0 : i64}
```

`ocm-bytes` overrides the capacity. Functions that differ only in parameter keys (the
layers of a model) are lowered once and re-bound (`axc.structure`).

```mlir
npu.loop %n = 0 to 7 {
  npu.dma_load %wq[114688 * %n : 128x896] -> %w0 : tensor<896x896xi8>, !npu.buf<128x896xi8, ocm>
  npu.dma_load %sq[128 * %n : 128] -> %s0 : tensor<896xbf16>, !npu.buf<128x1xbf16, ocm>
  npu.matmul %h, %w0 scales(%s0) -> %q[128 * %n : 1x128 : 896x1] {format = "s8", transpose_b} : ...
}
```
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    BFloat16Type,
    DenseArrayBase,
    DictionaryAttr,
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
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass

from axc.dialects import npu, quant, tfm
from axc.dialects.axc import GROUP_ATTR, NPU_MODE_ATTR, POST, ParamOp, TARGET_ATTR
from axc.dialects.npu import DDR, OCM, Access, Affine, float_prop, int_prop
from axc.dialects.tfm import tensor_type
from axc.errors import AxcError
from axc.npu_builder import Emitter, rows
from axc.ocm import lifetimes, pack
from axc.quantization import WeightSpec
from axc.structure import transform_once
from axc.targets import TargetDescriptor, check_weight_type, get_target
from axc.tiling import (
    AttentionShape,
    Budget,
    Tensor,
    Weight,
    nbytes,
    schedule_attention,
    schedule_matmul,
)

MASK_FILL = -1.0e30
"""Initial running max of online softmax (below any score plus the -65536 mask)."""
LEVELS: tuple[tuple[float, float], ...] = ((0.5, 1.0), (0.5, 0.75), (0.25, 0.75), (0.25, 0.5), (0.0, 0.5), (0.0, 0.25))
"""(`Budget.activations`, `Budget.tiles`) of each attempt to lower a function so that it fits."""
NORMS = (tfm.RMSNormOp, tfm.LayerNormOp, tfm.HeadNormOp)
RowBlock = Callable[[Affine, int, Affine | int], None]
"""The body of a linear over one block of rows: (first row, rows, its accumulator row)."""


def matrix_shape(type_: Attribute) -> tuple[int, int]:
    """Tensor shapes as `[rows, cols]`: `[1, T, D]` → (T, D); token vectors `[1, T]` → (T, 1)."""
    assert isinstance(type_, TensorType)
    shape = tuple(type_.get_shape())
    if len(shape) == 2 and shape[0] == 1:
        return shape[1], 1
    return math.prod(shape[:-1]), shape[-1]


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
    source = tensor_type(op.input).get_element_type()
    target = tensor_type(op.result).get_element_type()
    return target == source or isinstance(target, Float32Type)


@dataclass(frozen=True)
class GatedMlp:
    """`mul(act(linear(x, Wg)), linear(x, Wu))` whose intermediates nothing else reads."""

    gate: tfm.LinearOp | quant.LinearOp
    act: tfm.ActOp
    up: tfm.LinearOp | quant.LinearOp
    mul: tfm.MulOp

    @property
    def intermediates(self) -> tuple[SSAValue, ...]:
        return (self.gate.result, self.act.result, self.up.result)


def has_perm(weight: SSAValue) -> bool:
    owner = weight.owner
    return isinstance(owner, quant.WeightOp) and owner.perm is not None


def gated_mlps(ops: Sequence[Operation]) -> list[GatedMlp]:
    """The gated MLPs `tile` lowers as one schedule: single-use intermediates, no input
    permutation, and the activation of the product's type (`npu.act_mul` rounds it so)."""
    found: list[GatedMlp] = []
    linears = (tfm.LinearOp, quant.LinearOp)
    for op in ops:
        if not isinstance(op, tfm.MulOp):
            continue
        for act_value, up in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            act, up_op = act_value.owner, up.owner
            if not isinstance(act, tfm.ActOp) or not isinstance(up_op, linears):
                continue
            gate = act.input.owner
            if not isinstance(gate, linears) or gate.input != up_op.input:
                continue
            if tensor_type(act.result).get_element_type() != tensor_type(op.result).get_element_type():
                continue
            if has_perm(gate.weight) or has_perm(up_op.weight):
                continue
            if all(v.has_one_use() for v in (gate.result, act.result, up)):
                found.append(GatedMlp(gate, act, up_op, op))
                break
    return found


@dataclass(frozen=True)
class NormRope:
    """A per-head q/k norm and a rope, one feeding the other through a value nothing else
    reads (Qwen3: norm then rope; HunYuan: rope then norm). Lowered as one row pass, so
    the intermediate never has a buffer or a DDR round trip of its own."""

    first: tfm.HeadNormOp | tfm.RopeOp
    second: tfm.HeadNormOp | tfm.RopeOp


def norm_ropes(ops: Sequence[Operation]) -> list[NormRope]:
    found: list[NormRope] = []
    for op in ops:
        if isinstance(op, (tfm.HeadNormOp, tfm.RopeOp)) and op.result.has_one_use():
            user = next(iter(op.result.uses)).operation
            pair = {type(op), type(user)}
            if pair == {tfm.HeadNormOp, tfm.RopeOp} and user.operands[0] is op.result:
                found.append(NormRope(op, user))
    return found


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
    mlps: dict[Operation, GatedMlp] = field(default_factory=dict)  # by each of its ops
    norm_ropes: dict[Operation, NormRope] = field(default_factory=dict)  # by each of its ops
    resident: dict[Operation, int] = field(default_factory=dict)
    space: int = 0
    current: Operation | None = None
    schedules: list[Attribute] = field(default_factory=list)
    """The decisions made, for `npu.schedules` (`decided`)."""

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

    def decided(self, kind: str, tiles: Sequence[int], order: str, ddr_bytes: int | None = None, **homes: str) -> None:
        """Record one schedule for the function's `npu.schedules`: so FileCheck (and a
        reader) sees what was chosen, not only the loops it produced."""
        entry: dict[str, Attribute] = {
            "kind": StringAttr(kind),
            "op": StringAttr(self.current.name if self.current is not None else "func.return"),
            "tiles": DenseArrayBase.from_list(i64, list(tiles)),
            "order": StringAttr(order),
        }
        entry.update({name: StringAttr(home) for name, home in homes.items()})
        if ddr_bytes is not None:
            entry["ddr_bytes"] = int_prop(ddr_bytes)
        self.schedules.append(DictionaryAttr(entry))

    # -- planning --

    def plan(self) -> None:
        """Choose OCM or DDR for every activation, and the OCM live around each op."""
        ops = list(self.source.body.block.ops)
        ret = ops[-1]
        assert isinstance(ret, func.ReturnOp)
        at = {op: index for index, op in enumerate(ops)}
        fused: set[SSAValue] = set()
        for mlp in gated_mlps(ops):
            fused.update(mlp.intermediates)
            for member in (mlp.gate, mlp.act, mlp.up, mlp.mul):
                self.mlps[member] = mlp
                at[member] = at[mlp.mul]  # lowered as one op, where the product is made
        for pair in norm_ropes(ops):
            fused.add(pair.first.result)
            self.norm_ropes[pair.first] = self.norm_ropes[pair.second] = pair
            at[pair.first] = at[pair.second]
        root: dict[SSAValue, SSAValue] = {arg: arg for arg in self.source.args}
        for op in ops:
            for result in op.results:
                root[result] = result
            if isinstance(op, tfm.CastOp) and is_widening(op):
                root[op.result] = root[op.input]
        first: dict[SSAValue, int] = {}
        last: dict[SSAValue, int] = {}
        streamed: dict[SSAValue, bool] = {}
        fixed: dict[SSAValue, str] = {}
        for op in ops:
            index = at[op]
            for result in op.results:
                if root[result] is result and result not in fused and isinstance(result.type, TensorType) and not isinstance(op, ParamOp):
                    first.setdefault(result, index)
            if isinstance(op, tfm.CastOp) and is_widening(op):
                continue  # an alias: its readers count as readers of the root
            for position, operand in enumerate(op.operands):
                r = root.get(operand)
                if r is None or r in fused or not isinstance(r.type, TensorType):
                    continue
                if isinstance(r.owner, ParamOp):
                    if not isinstance(op, NORMS):
                        continue  # weights stream through tiles
                    fixed[r] = OCM  # a norm's weight row is loaded once
                first[r] = min(first.get(r, index), index)
                last[r] = max(last.get(r, index), index)
                cache = isinstance(op, tfm.AttentionOp) and position >= 3
                streamed[r] = streamed.get(r, True) and cache
        for value in ret.operands:
            if not any(u.operation is not ret for u in value.uses):
                fixed[root[value]] = DDR  # only returned: produce it straight into the output
        for r, only_streamed in streamed.items():
            if only_streamed:
                fixed[r] = DDR
        sizes = {r: self.budget.aligned(nbytes(math.prod(matrix_shape(r.type)), tensor_type(r).get_element_type())) for r in first}
        for op in ops:
            # A top-k sees its whole row at once: keep the logits on chip if they fit at all.
            if isinstance(op, tfm.TopKOp) and sizes.get(root[op.input], 0) <= self.budget.ocm * 3 // 4:
                fixed[root[op.input]] = OCM
        homes = {r: fixed.get(r, OCM) for r in first}
        limit = self.budget.ocm * self.budget.activations

        def live(index: int) -> list[SSAValue]:
            return [r for r in homes if homes[r] == OCM and first[r] <= index <= last.get(r, first[r])]

        while True:
            peak = max((live(i) for i in range(len(ops))), key=lambda values: sum(sizes[r] for r in values))
            victim = max((r for r in peak if r not in fixed), key=sizes.__getitem__, default=None)
            if sum(sizes[r] for r in peak) <= limit or victim is None:
                break
            homes[victim] = DDR
        self.homes = {value: homes[root[value]] for value in root if root[value] in homes}
        self.resident = {op: sum(sizes[r] for r in live(at[op])) for op in ops}

    # -- values --

    def tensor(self, value: SSAValue) -> Tensor:
        """The activation behind a tfm value; an input planned for OCM is loaded at first use."""
        if value in self.tensors:
            return self.tensors[value]
        if value not in self.ddr:
            raise AxcError(f"tile: value {value} has no lowering")
        source = self.ddr[value]
        r, c = matrix_shape(value.type)
        element = tensor_type(value).get_element_type()
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
        element = tensor_type(value).get_element_type()
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

    def rowwise(self, tensors: Sequence[tuple[Tensor, bool]], emit: Callable[[list[Access], Affine, int], object]) -> None:
        """Run `emit(accesses, first_row, count)` over whole buffers, or over row tiles
        staged through OCM when an operand lives in DDR (`bool` marks outputs)."""
        total = tensors[0][0].rows
        staged = {id(t): (t, is_out) for t, is_out in tensors if t.home == DDR}
        if not staged:
            emit([t.whole() for t, _ in tensors], Affine(), total)
            return
        per_row = sum(nbytes(t.cols, t.element) * (1 if is_out else 2) for t, is_out in staged.values())
        count = self.budget.row_tile(total, per_row, self.space - 2 * self.budget.alignment * len(staged))
        self.decided("rows", (count,), "r")
        tiles = {key: self.em.alloc((count, t.cols), t.element) for key, (t, _) in staged.items()}

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
        self.space = int((self.budget.ocm - self.resident.get(op, 0)) * self.budget.tiles)
        self.current = op
        mlp = self.mlps.get(op)
        pair = self.norm_ropes.get(op)
        if mlp is not None:
            if op is mlp.mul:  # the gate, act and up ops are lowered with their product
                self.gated(mlp)
        elif pair is not None:
            if op is pair.second:
                self.norm_rope(pair)
        elif isinstance(op, ParamOp):
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
        elif isinstance(op, tfm.HeadNormOp):
            self.head_norm(op)
        elif isinstance(op, tfm.AttentionOp):
            self.attention(op)
        elif isinstance(op, tfm.ActOp):
            self.elementwise(op, npu.ActOp, ("input",), kind=op.kind)
        elif isinstance(op, tfm.SoftcapOp):
            self.elementwise(op, npu.SoftcapOp, ("input",), cap=op.cap)
        elif isinstance(op, tfm.AddOp):
            self.elementwise(op, npu.AddOp, ("lhs", "rhs"))
        elif isinstance(op, tfm.MulOp):
            self.elementwise(op, npu.MulOp, ("lhs", "rhs"))
        elif isinstance(op, tfm.TopKOp):
            self.topk(op)
        elif isinstance(op, func.ReturnOp):
            self.finish(op)
        else:
            raise self.fail(op, "has no npu lowering (supported: linear, norms, head norms, rope, attention, act, softcap, add, mul, cast, topk)")

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
        n, k = tuple(tensor_type(value).get_shape())
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
        eps = op.eps  # type: ignore[attr-defined]  # every norm op of NORMS has eps
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

    def rope_emitter(self, op: tfm.RopeOp) -> Callable[[Access, Access, Affine, int], None]:
        """Emits `npu.rope` of rows `[start, start + n)` from one view into another."""
        count = matrix_shape(op.positions.type)[0]
        positions = self.ocm_copy(self.ddr_of(op.positions), (count,), name="positions")
        props = {"num_heads": op.num_heads, "head_dim": op.head_dim, "rope": op.rope}
        ext = op.ext_factors
        table = None if ext is None else self.ocm_copy(self.ddr[ext], tfm.shape_of(ext), name="ext_factors")

        def emit(x: Access, out: Access, start: Affine, n: int) -> None:
            self.em.access(
                npu.RopeOp,
                {"input": x, "positions": Access(positions, start, (n,), (1,)), "ext_factors": table, "out": out},
                **props,
            )

        return emit

    def head_norm_emitter(self, op: tfm.HeadNormOp) -> Callable[[Access, Access, Affine, int], None]:
        """Emits `npu.head_norm` of a row view into another (its weight loaded once)."""
        head_dim = op.head_dim.value.data
        weight = self.ocm_copy(self.ddr[op.weight], (head_dim,))

        def emit(x: Access, out: Access, start: Affine, n: int) -> None:
            self.em.access(npu.HeadNormOp, {"input": x, "weight": weight, "out": out}, eps=op.eps, head_dim=op.head_dim)

        return emit

    def emitter(self, op: tfm.HeadNormOp | tfm.RopeOp) -> Callable[[Access, Access, Affine, int], None]:
        return self.rope_emitter(op) if isinstance(op, tfm.RopeOp) else self.head_norm_emitter(op)

    def rope(self, op: tfm.RopeOp) -> None:
        x = self.tensor(op.input)
        emit = self.rope_emitter(op)
        y = self.result(op.result)
        self.rowwise([(x, False), (y, True)], lambda a, start, n: emit(a[0], a[1], start, n))

    def head_norm(self, op: tfm.HeadNormOp) -> None:
        x = self.tensor(op.input)
        emit = self.head_norm_emitter(op)
        y = self.result(op.result)
        self.rowwise([(x, False), (y, True)], lambda a, start, n: emit(a[0], a[1], start, n))

    def norm_rope(self, pair: NormRope) -> None:
        """Both ops on each row tile: the first into the result's tile, the second in place."""
        x = self.tensor(pair.first.operands[0])
        first, second = self.emitter(pair.first), self.emitter(pair.second)
        y = self.result(pair.second.results[0])

        def emit(a: list[Access], start: Affine, n: int) -> None:
            first(a[0], a[1], start, n)
            second(a[1], a[1], start, n)

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

    def weight_of(self, op: tfm.LinearOp | quant.LinearOp) -> Weight:
        w = self.weights[op.weight] if isinstance(op, quant.LinearOp) else self.plain_weight(op.weight)
        return dataclasses.replace(w, bias=self.ddr[op.bias]) if op.bias is not None else w

    def linear(self, op: tfm.LinearOp | quant.LinearOp) -> None:
        w = self.weight_of(op)
        x = self.tensor(op.input)
        space = self.space
        if w.perm is not None:
            x = self.gather(op, x, w.perm)
            space -= self.budget.aligned(x.nbytes) if x.home == OCM else 0
        self.matmuls(x, [w], self.result(op.result), space)

    def gated(self, mlp: GatedMlp) -> None:
        x = self.tensor(mlp.gate.input)
        tiles = tuple(tensor_type(v).get_element_type() for v in (mlp.gate.result, mlp.up.result))
        weights = [self.weight_of(mlp.gate), self.weight_of(mlp.up)]
        self.matmuls(x, weights, self.result(mlp.mul.result), self.space, mlp.act.kind, tiles)

    def matmuls(
        self, x: Tensor, weights: list[Weight], y: Tensor, space: int,
        act: StringAttr | None = None, tiles: tuple[Attribute, ...] = (),
    ) -> None:
        """`y = x @ W^T`, or `y = act(x @ Wg^T) * (x @ Wu^T)` for a gate and an up weight (products
        in `tiles` of their types), in the loop order `axc.tiling.schedule_matmul` picks."""
        plan = schedule_matmul(self.budget, space, x, weights, y, tiles)
        m, k, n = x.rows, weights[0].k, weights[0].n
        mt, nt, kt = plan.mt, plan.nt, plan.kt
        split = plan.split(k)
        order = ("m,n,k" if split else "m,n") if plan.m_outer else ("n,k,m" if split else "n,m")
        self.decided("gated_mlp" if act is not None else "linear", (mt, nt, kt), order, plan.ddr_bytes, **{"in": x.home, "out": y.home})
        count = range(len(weights))
        buffers = [self.weight_buffers(w, nt, kt) for w in weights]
        accs = [self.em.alloc((mt if plan.m_outer else m, nt), f32, name="acc") for _ in count] if split else []
        products = [self.em.alloc((mt, nt), element, name=name) for element, name in zip(tiles, ("gate", "up"))]
        xt = self.em.alloc((mt, k if plan.m_outer else kt), x.element, name="x") if x.home == DDR else None
        yt = self.em.alloc((mt, nt), y.element, name="y") if y.home == DDR else None
        props: list[dict[str, Attribute]] = []
        for w in weights:
            props.append({"transpose_b": UnitAttr()})
            if w.fmt != "float":
                props[-1].update(format=StringAttr(w.fmt), group=int_prop(w.group))

        def load_scales(i: int, n0: Affine, ns: int, k0: Affine, ks: int) -> dict[str, Access | None]:
            w, operands = weights[i], dict[str, Access | None]()
            g0 = Affine() if w.group == 0 else k0 // w.group
            for role in ("scales", "zeros"):
                source, buffer = getattr(w, role), buffers[i].get(role)
                if source is None or buffer is None:
                    continue
                tile = rows(buffer, w.groups(kt), 0, ns, 0, w.groups(ks))
                self.em.access(npu.DmaLoadOp, {"src": rows(source, w.groups(k), n0, ns, g0, w.groups(ks)), "dst": tile})
                operands[role] = tile
            return operands

        def load_weights(i: int, n0: Affine, ns: int, k0: Affine, ks: int) -> dict[str, Access | None]:
            w = weights[i]
            cols = math.ceil(ks / w.div)
            tile = rows(buffers[i]["data"], math.ceil(kt / w.div), 0, ns, 0, cols)
            self.em.access(npu.DmaLoadOp, {"src": rows(w.data, w.data_cols, n0, ns, k0 // w.div, cols), "dst": tile})
            operands: dict[str, Access | None] = {"rhs": tile}
            if w.group or not split:  # per-channel scales of a K-split tile load once per N tile
                operands.update(load_scales(i, n0, ns, k0, ks))
            return operands

        def load_bias(i: int, n0: Affine, ns: int) -> Access | None:
            bias, buffer = weights[i].bias, buffers[i].get("bias")
            if bias is None or buffer is None:
                return None
            tile = rows(buffer, nt, 0, 1, 0, ns)
            self.em.access(npu.DmaLoadOp, {"src": Access(bias, n0, (1, ns)), "dst": tile})
            return tile

        def lhs(m0: Affine, ms: int, k0: Affine | int, ks: int) -> Access:
            if xt is None:
                return x.at(m0, ms, k0, ks)
            if plan.m_outer:
                return rows(xt, k, 0, ms, k0, ks)
            tile = rows(xt, kt, 0, ms, 0, ks)
            self.em.access(npu.DmaLoadOp, {"src": x.at(m0, ms, k0, ks), "dst": tile})
            return tile

        def output(m0: Affine, ms: int, n0: Affine, ns: int, write: Callable[[int, Access], object]) -> None:
            target = y.at(m0, ms, n0, ns) if yt is None else rows(yt, nt, 0, ms, 0, ns)
            if act is None:
                write(0, target)
            else:
                views = [rows(p, nt, 0, ms, 0, ns) for p in products]
                for i in count:
                    write(i, views[i])
                self.em.access(npu.ActMulOp, {"gate": views[0], "up": views[1], "out": target}, kind=act)
            if yt is not None:
                self.em.access(npu.DmaStoreOp, {"src": target, "dst": y.at(m0, ms, n0, ns)})

        def n_tile(n0: Affine, ns: int, blocks: Callable[[RowBlock], None], acc_rows: int) -> None:
            """One N tile over the row blocks `blocks` yields as (first row, rows, accumulator row)."""
            if not split:
                operands = [{**load_weights(i, n0, ns, Affine(), k), "bias": load_bias(i, n0, ns)} for i in count]

                def direct(m0: Affine, ms: int, _: Affine | int) -> None:
                    a = lhs(m0, ms, 0, k)
                    output(m0, ms, n0, ns, lambda i, out: self.em.access(npu.MatmulOp, {"lhs": a, **operands[i], "out": out}, **props[i]))

                blocks(direct)
                return
            for acc in accs:
                self.em.access(npu.FillOp, {"out": rows(acc, nt, 0, acc_rows, 0, ns)}, value=float_prop(0.0))
            channel = [load_scales(i, n0, ns, Affine(), k) if weights[i].group == 0 else {} for i in count]

            def k_tile(k0: Affine, ks: int) -> None:
                operands = [{**load_weights(i, n0, ns, k0, ks), **channel[i]} for i in count]

                def accumulate(m0: Affine, ms: int, r0: Affine | int) -> None:
                    a = lhs(m0, ms, k0, ks)
                    for i in count:
                        out = rows(accs[i], nt, r0, ms, 0, ns)
                        self.em.access(npu.MatmulOp, {"lhs": a, **operands[i], "out": out}, **props[i], accumulate=UnitAttr())

                blocks(accumulate)

            self.em.tiles(k, kt, k_tile, "k")
            biases = [load_bias(i, n0, ns) for i in count]

            def finish(m0: Affine, ms: int, r0: Affine | int) -> None:
                def write(i: int, out: Access) -> None:
                    partial = rows(accs[i], nt, r0, ms, 0, ns)
                    if biases[i] is None:
                        self.em.access(npu.CastOp, {"input": partial, "out": out})
                    else:
                        self.em.access(npu.AddOp, {"lhs": partial, "rhs": biases[i], "out": out})

                output(m0, ms, n0, ns, write)

            blocks(finish)

        if not plan.m_outer:
            def all_rows(body: RowBlock) -> None:
                self.em.tiles(m, mt, lambda m0, ms: body(m0, ms, m0), "m")

            self.em.tiles(n, nt, lambda n0, ns: n_tile(n0, ns, all_rows, m), "n")
            return

        def m_block(m0: Affine, ms: int) -> None:
            if xt is not None:
                self.em.access(npu.DmaLoadOp, {"src": x.at(m0, ms), "dst": rows(xt, k, 0, ms)})
            self.em.tiles(n, nt, lambda n0, ns: n_tile(n0, ns, lambda body: body(m0, ms, 0), ms), "n")

        self.em.tiles(m, mt, m_block, "m")

    def weight_buffers(self, w: Weight, nt: int, kt: int) -> dict[str, SSAValue]:
        """OCM tiles of a streamed `[nt, kt]` weight tile, by role."""
        result = {"data": self.em.alloc((nt, math.ceil(kt / w.div)), npu.element_of(w.data), name="w")}
        for role, name in (("scales", "s"), ("zeros", "z")):
            source = getattr(w, role)
            if source is not None:
                result[role] = self.em.alloc((nt, w.groups(kt)), npu.element_of(source), name=name)
        if w.bias is not None:
            result["bias"] = self.em.alloc((1, nt), npu.element_of(w.bias), name="b")
        return result

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
        kv_heads, d = op.num_kv_heads.value.data, op.head_dim.value.data
        group = op.num_heads.value.data // kv_heads
        scale = op.scale.value.data
        q, k_new, v_new = (self.tensor(v) for v in (op.query, op.key, op.value))
        caches = [self.ddr_of(v) for v in op.caches]  # none in a history-0 group
        mask = self.ddr_of(op.mask)
        out = self.result(op.result)
        tokens = q.rows
        history = npu.ddr_shape(caches[0])[1] if caches else 0
        cache_element = npu.element_of(caches[0]) if caches else k_new.element
        width, total, qd = kv_heads * d, history + tokens, group * d
        shape = AttentionShape(
            tokens, history, kv_heads, group, d, cache_element, npu.element_of(mask),
            tuple(t.element for t in (k_new, v_new) if t.home == DDR),
            q.element if q.home == DDR else None,
            out.element if out.home == DDR else None,
        )
        plan = schedule_attention(self.budget, self.space, shape)
        tq = plan.tq
        self.decided(
            "attention", (plan.tq, plan.cols), "q,h,kv", plan.ddr_bytes,
            **{"in": q.home, "out": out.home, "mask": "rows" if plan.mask_rows else "tiles"},
        )
        st, sn = min(history, plan.cols), min(tokens, plan.cols)
        if st < history and st > self.budget.gran_n:
            st -= st % self.budget.gran_n
        cols = max(st, sn)
        if history:
            kt = self.em.alloc((st, d), cache_element, name="k")
            vt = self.em.alloc((st, d), cache_element, name="v")
        scores = self.em.alloc((group, tq, cols), f32, name="scores")
        m_run = self.em.alloc((group, tq, 1), f32, name="max")
        l_run = self.em.alloc((group, tq, 1), f32, name="sum")
        corr = self.em.alloc((group, tq, 1), f32, name="corr")
        acc = self.em.alloc((group, tq, d), f32, name="acc")
        mask_width = total if plan.mask_rows else cols
        mask_buf = self.em.alloc((tq, mask_width), shape.mask, name="mask")
        qt = self.em.alloc((tq, qd), q.element, name="q") if q.home == DDR else None
        ot = self.em.alloc((tq, qd), out.element, name="o") if out.home == DDR else None
        kn = self.em.alloc((sn, d), k_new.element, name="k_new") if k_new.home == DDR else None
        vn = self.em.alloc((sn, d), v_new.element, name="v_new") if v_new.home == DDR else None
        softcap = op.softcap.value.data
        window = op.sliding_window.value.data
        if window:
            assert op.positions is not None
            query_positions = self.ocm_copy(self.ddr_of(op.positions), (tokens,), name="positions")
            cache_positions = self.em.alloc((max(history, 1),), npu.element_of(query_positions), name="cache_positions")
            if history:
                self.em.access(npu.IotaOp, {"out": cache_positions})

        def query_tile(q0: Affine, nq: int) -> None:
            if plan.mask_rows:
                self.em.access(npu.DmaLoadOp, {"src": rows(mask, total, q0, nq), "dst": rows(mask_buf, total, 0, nq)})
            state = {name: Access(buf, Affine(), (group, nq, 1), (tq, 1, 1)) for name, buf in (("max", m_run), ("sum", l_run), ("corr", corr))}
            acc_view = Access(acc, Affine(), (group, nq, d), (tq * d, d, 1))

            def head(h: Affine, _: int) -> None:
                if qt is not None:
                    self.em.access(npu.DmaLoadOp, {"src": q.at(q0, nq, h * qd, qd), "dst": rows(qt, qd, 0, nq)})
                    query = Access(qt, Affine(), (group, nq, d), (d, qd, 1))
                else:
                    query = Access(q.value, q0 * q.cols + h * qd, (group, nq, d), (d, q.cols, 1))
                for buf, value in ((m_run, MASK_FILL), (l_run, 0.0), (acc, 0.0)):
                    size = npu.dims_of(buf)[2]
                    self.em.access(npu.FillOp, {"out": Access(buf, Affine(), (group, nq, size), (tq * size, size, 1))}, value=float_prop(value))

                def step(keys: Access, values: Access, start: Affine, count: int, new: Affine | None = None) -> None:
                    """One KV tile at mask column `start` (`new`: its first row among the new ones)."""
                    if plan.mask_rows:
                        mask_tile = Access(mask_buf, start, (nq, count), (total, 1))
                    else:
                        mask_tile = Access(mask_buf, Affine(), (nq, count), (cols, 1))
                        self.em.access(npu.DmaLoadOp, {"src": Access(mask, q0 * total + start, (nq, count), (total, 1)), "dst": mask_tile})
                    s = Access(scores, Affine(), (group, nq, count), (tq * cols, cols, 1))
                    self.em.access(npu.MatmulOp, {"lhs": query, "rhs": keys, "out": s}, transpose_b=UnitAttr(), alpha=float_prop(scale))
                    if softcap:
                        self.em.access(npu.SoftcapOp, {"input": s, "out": s}, cap=float_prop(softcap))
                    self.em.access(npu.AddOp, {"lhs": s, "rhs": mask_tile, "out": s})
                    if window:
                        keys_at = (
                            Access(cache_positions, start, (count,)) if new is None
                            else Access(query_positions, new, (count,))
                        )
                        self.em.access(
                            npu.WindowMaskOp,
                            {"scores": s, "query_positions": Access(query_positions, q0, (nq,)), "key_positions": keys_at, "out": s},
                            window=int_prop(window),
                        )
                    self.em.access(npu.OnlineSoftmaxOp, {"scores": s, "probs": s, **state})
                    self.em.access(npu.MulOp, {"lhs": acc_view, "rhs": state["corr"], "out": acc_view})
                    self.em.access(npu.MatmulOp, {"lhs": s, "rhs": values, "out": acc_view}, accumulate=UnitAttr())

                def cache_tile(t0: Affine, ns: int) -> None:
                    keys, values = rows(kt, d, 0, ns), rows(vt, d, 0, ns)
                    for source, tile in zip(caches, (keys, values)):
                        self.em.access(npu.DmaLoadOp, {"src": rows(source, width, t0, ns, h * d, d), "dst": tile})
                    step(keys, values, t0, ns)

                def new_tile(t0: Affine, ns: int) -> None:
                    pair = []
                    for t, staged in ((k_new, kn), (v_new, vn)):
                        if staged is None:
                            pair.append(t.at(t0, ns, h * d, d))
                        else:
                            pair.append(rows(staged, d, 0, ns))
                            self.em.access(npu.DmaLoadOp, {"src": t.at(t0, ns, h * d, d), "dst": pair[-1]})
                    step(pair[0], pair[1], t0 + history, ns, t0)

                if history:
                    self.em.tiles(history, st, cache_tile, "t")
                self.em.tiles(tokens, sn, new_tile, "u")
                o_base, o_offset, o_stride = (ot, Affine(), qd) if ot is not None else (out.value, q0 * out.cols + h * qd, out.cols)
                assert o_base is not None
                o_view = Access(o_base, o_offset, (group, nq, d), (d, o_stride, 1))
                self.em.access(npu.DivOp, {"lhs": acc_view, "rhs": state["sum"], "out": o_view})
                if ot is not None:
                    self.em.access(npu.DmaStoreOp, {"src": rows(ot, qd, 0, nq), "dst": out.at(q0, nq, h * qd, qd)})

            self.em.tiles(kv_heads, 1, head, "h")

        self.em.tiles(tokens, tq, query_tile, "q")

    # -- results --

    def finish(self, op: func.ReturnOp) -> None:
        self.current = None
        results: list[SSAValue] = []
        for value in op.operands:
            t = self.tensors.get(value)
            buffer = self.outputs.get(value)
            if t is not None and buffer is not None and t.home == OCM and t.element == npu.element_of(buffer):
                self.em.access(npu.DmaStoreOp, {"src": t.whole(), "dst": Access(buffer, Affine(), (t.rows, t.cols))})
            elif t is None or buffer is None or t.value is not buffer:
                source = self.tensor(value)
                copy = self.em.alloc(tuple(tensor_type(value).get_shape()), tensor_type(value).get_element_type(), DDR, name="out")
                target = Tensor(source.rows, source.cols, npu.element_of(copy), DDR, copy)
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
                shape = tuple(tensor_type(value).get_shape())
                self.outputs[value] = self.em.alloc(shape, tensor_type(value).get_element_type(), DDR, name="out")
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
        function.attributes[npu.SCHEDULES_ATTR] = ArrayAttr(self.schedules)
        return function


def lower_fitting(function: func.FuncOp, budget: Budget, target: TargetDescriptor) -> func.FuncOp:
    """The first of `LEVELS` whose lowering of `function` can be placed in OCM (else the
    last, for `allocate-ocm` to name what does not fit), with its index as `npu.fit_level`."""
    for level, (activations, tiles) in enumerate(LEVELS):
        lowered = FunctionLowering(function, dataclasses.replace(budget, activations=activations, tiles=tiles), target).run()
        lowered.attributes[npu.FIT_LEVEL_ATTR] = int_prop(level)
        if pack(lifetimes(lowered), budget.ocm) is None:
            break
    return lowered


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
            if isinstance(f, func.FuncOp) and (GROUP_ATTR in f.attributes or f.sym_name.data == POST)
        ]
        transform_once(op, functions, lambda f: lower_fitting(f, budget, descriptor))
        op.attributes[TARGET_ATTR] = StringAttr(descriptor.chip)
        op.attributes[NPU_MODE_ATTR] = StringAttr(descriptor.npu_mode)
        op.attributes[npu.OCM_CAPACITY_ATTR] = int_prop(budget.ocm)
