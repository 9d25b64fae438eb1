"""npu → target level: resolve every address, schedule, and pack the parameter blob.

Shared by `lower-to-ax650` and `lower-to-ax620e`. Address assignment needs the whole
program (every buffer of a function, every parameter of a layer), so this is a walk, not
a rewrite:

- **OCM**: the offsets `allocate-ocm` chose (core 0's slice).
- **DDR**: function arguments are the group's input buffers `in<k>`; the DDR buffers the
  function returns (through `npu.to_tensor`) are its output buffers `out<k>`; every other
  DDR buffer gets an aligned offset in the group's scratch area.
- **Parameters**: every `axc.param` of every shape group of a layer is placed ONCE in the
  layer's blob (first use first, `ddr_alignment`-aligned); all groups address the same
  bytes.

The ops map one to one, by name, onto the instruction set (`npu.matmul` → `matmul`, with
the properties of the same names as immediates); loops stay loops, an induction variable
becoming a per-iteration byte stride of its loop level. Layers that share a structure are
lowered once and re-bound (`axc.structure`): only their segments' parameter names differ.

```mlir
func.func @layer_0_g0(...)  // npu, after allocate-ocm
// lower-to-ax650
ax650.model @layer_0 {chip = "AX650", npu_mode = "NPU1"} {
  ax650.segment <"axc"::"model.layers.0.self_attn.q_proj.s8"> at 0 : tensor<64x64xi8>
  ax650.group "decode" (K_cache : tensor<1x24x32xbf16>, ...) -> (...) scratch 0 { ... }
}
```
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.irdl import IRDLOperation
from xdsl.ir import Block, Dialect, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from axc import isa
from axc.isa import Instr, Loop, Node, Operand, Program
from axc.codegen.schedule import schedule
from axc.dialects import npu
from axc.dialects.axc import (
    GROUP_ATTR,
    HISTORY_ATTR,
    INPUT_NAMES_ATTR,
    NPU_MODE_ATTR,
    OUTPUT_NAMES_ATTR,
    TARGET_ATTR,
    ParamAttr,
    ParamOp,
    group_index,
    layer_index,
)
from axc.dialects.axtarget import (
    GroupOpBase,
    ModelOpBase,
    element_code,
    family_code,
    int_prop,
    ops_by_suffix,
)
from axc.errors import AxcError
from axc.structure import params_in_order, structure_key
from axc.targets import TargetDescriptor, get_target


def group_label(function: func.FuncOp) -> str:
    """`decode`, `prefill_<history>` (the history rows the group sees) or the function name."""
    attrs = function.attributes
    group = attrs.get(GROUP_ATTR)
    if not isinstance(group, IntegerAttr):
        return function.sym_name.data
    if group.value.data == 0:
        return "decode"
    history = attrs.get(HISTORY_ATTR)
    return f"prefill_{history.value.data}" if isinstance(history, IntegerAttr) else f"group_{group.value.data}"


def names_of(function: func.FuncOp, attr: str, count: int, stem: str) -> list[str]:
    names = function.attributes.get(attr)
    if isinstance(names, ArrayAttr) and len(names.data) == count:
        return [n.data for n in names.data if isinstance(n, StringAttr)]
    return [f"{stem}{i}" for i in range(count)]


@dataclass
class ParamLayout:
    """Offsets of a layer's parameters in its blob's data area."""

    alignment: int
    offsets: dict[tuple[str, str], int] = field(default_factory=dict)
    types: dict[tuple[str, str], TensorType] = field(default_factory=dict)
    end: int = 0

    def place(self, param: ParamAttr, type_: TensorType) -> int:
        key = (param.scope.data, param.key.data)
        if key in self.offsets:
            if self.types[key] != type_:
                raise AxcError(f"lower: parameter {key[0]}::{key[1]} is used as {self.types[key]} and as {type_}")
            return self.offsets[key]
        offset = isa.align(self.end, self.alignment)
        self.offsets[key] = offset
        self.types[key] = type_
        code = element_code(type_.get_element_type(), f"parameter {key[1]}")
        self.end = offset + math.prod(type_.get_shape()) * isa.DTYPE_OF_CODE[code].itemsize
        return offset


@dataclass
class GroupLowering:
    """One npu function → an `isa.Program` and its I/O."""

    function: func.FuncOp
    target: TargetDescriptor
    params: ParamLayout
    where: str = ""
    float_matmul_on_conv: bool = False
    homes: dict[SSAValue, tuple[int, int, int]] = field(default_factory=dict)
    ivs: dict[SSAValue, tuple[int, int, int]] = field(default_factory=dict)
    scratch: int = 0

    def fail(self, message: str) -> AxcError:
        return AxcError(f"lower: @{self.function.sym_name.data}: {message}")

    def place_buffers(self) -> None:
        function = self.function
        for index, arg in enumerate(function.args):
            self.homes[arg] = (isa.INPUT, index, 0)
        ret = function.body.block.last_op
        if not isinstance(ret, func.ReturnOp):
            raise self.fail("the function does not end in func.return")
        for index, value in enumerate(ret.operands):
            owner = value.owner
            if not isinstance(owner, npu.ToTensorOp) or not isinstance(owner.buffer.owner, npu.AllocOp):
                raise self.fail(f"result {index} is not an npu.to_tensor of a DDR buffer; run tile first")
            if owner.buffer in self.homes:
                raise self.fail(f"result {index} returns a buffer already returned")
            self.homes[owner.buffer] = (isa.OUTPUT, index, 0)
        alignment = self.target.ddr_alignment
        for op in function.body.walk():
            if isinstance(op, ParamOp):
                assert isinstance(op.result.type, TensorType)
                self.homes[op.result] = (isa.PARAMS, 0, self.params.place(op.param, op.result.type))
            elif isinstance(op, npu.AllocOp):
                type_ = op.buffer_type
                if type_.on_chip:
                    if op.offset is None:
                        raise self.fail(f"OCM buffer %{op.result.name_hint or '?'} has no offset; run allocate-ocm first")
                    self.homes[op.result] = (isa.OCM, 0, op.offset.value.data)
                elif op.result not in self.homes:
                    self.scratch = isa.align(self.scratch, alignment)
                    self.homes[op.result] = (isa.SCRATCH, 0, self.scratch)
                    self.scratch += type_.nbytes

    def operand(self, op: npu.AccessOp, value: SSAValue, view: npu.ViewAttr) -> Operand:
        home = self.homes.get(value)
        if home is None:
            raise self.fail(f"{op.name} addresses a value that is not a buffer, parameter or argument")
        space, index, base = home
        code = element_code(npu.element_of(value), f"{op.name} operand")
        item = isa.DTYPE_OF_CODE[code].itemsize
        if len(view.sizes) > isa.MAX_RANK:
            raise self.fail(f"{op.name} has a rank-{len(view.sizes)} view; the instruction set addresses at most {isa.MAX_RANK} dims")
        address = base + view.coeffs[0] * item
        loops = [0] * isa.MAX_DEPTH
        for coeff, iv in zip(view.coeffs[1:], op.ivs):  # type: ignore[attr-defined]  # every AccessOp has ivs; AccessOp itself does not declare them
            depth, lb, step = self.ivs[iv]
            address += coeff * lb * item
            loops[depth] += coeff * step * item
        return Operand(space, index, code, address, tuple(view.sizes), tuple(s * item for s in view.strides), tuple(loops))

    def instr(self, op: npu.AccessOp) -> Instr:
        info = isa.OP_BY_NAME.get(op.name.split(".", 1)[1])
        if info is None or info.engine == "control":
            raise self.fail(f"{op.name} has no instruction")
        views = {name: (value, view) for name, value, view in op.accesses()}
        operands = tuple(
            self.operand(op, *views[name]) if name in views else None for name in info.operands
        )
        if isinstance(op, npu.RopeOp):  # its immediates are num_heads and the RopeSpec fields
            spec = op.rope.spec(op.head_dim.value.data).values()
            values: list[Any] = [op.num_heads.value.data if imm.name == "num_heads" else spec[imm.name] for imm in info.imms]
        else:
            values = [self.immediate(op, imm) for imm in info.imms]
        queue = {"matrix": isa.MATRIX_QUEUE, "vector": isa.VECTOR_QUEUE}.get(info.engine, 0)  # DMA: `schedule` picks
        return Instr(info, 0, queue, operands, tuple(values))

    def immediate(self, op: npu.AccessOp, imm: isa.Imm) -> Any:
        attr = getattr(op, imm.name, None)
        if imm.kind == "flag":
            return isinstance(attr, UnitAttr)
        if attr is None:
            if imm.default is None:
                raise self.fail(f"{op.name} lacks {imm.name}")
            return imm.default
        if isinstance(attr, StringAttr):
            return attr.data
        if isinstance(attr, FloatAttr):
            return attr.value.data
        assert isinstance(attr, IntegerAttr)
        return attr.value.data

    def nodes(self, block: Block, depth: int) -> list[Node]:
        result: list[Node] = []
        for op in block.ops:
            if isinstance(op, npu.LoopOp):
                iterations = op.iterations()
                if not iterations:
                    continue
                if depth >= isa.MAX_DEPTH:
                    raise self.fail(f"loops nest deeper than {isa.MAX_DEPTH}; the instruction set has {isa.MAX_DEPTH} loop levels")
                self.ivs[op.iv] = (depth, iterations.start, iterations.step)
                result.append(Loop(len(iterations), self.nodes(op.body.block, depth + 1)))
            elif isinstance(op, npu.AccessOp):
                result.append(self.instr(op))
            elif isinstance(op, (npu.AllocOp, npu.BarrierOp, npu.ToTensorOp, ParamOp, func.ReturnOp)):
                continue  # buffers are addresses now; synchronisation is recomputed by `schedule`
            else:
                raise self.fail(f"{op.name} cannot be lowered to the target; run tile, fuse, double-buffer and allocate-ocm first")
        return result

    def run(self) -> tuple[Program, dict[str, Any]]:
        self.place_buffers()
        body = self.nodes(self.function.body.block, 0)
        function = self.function
        types = function.function_type
        program = Program(
            family_code(self.target.family),
            self.target.cores,
            isa.align(self.scratch, self.target.ddr_alignment),
            len(types.inputs.data),
            len(types.outputs.data),
            body,
        )
        io = {
            "label": group_label(function),
            "inputs": list(zip(names_of(function, INPUT_NAMES_ATTR, len(types.inputs.data), "input"), types.inputs.data)),
            "outputs": list(zip(names_of(function, OUTPUT_NAMES_ATTR, len(types.outputs.data), "output"), types.outputs.data)),
        }
        return schedule(program, self.target, self.float_matmul_on_conv), io


def lowered_units(module: ModuleOp) -> list[tuple[str, list[func.FuncOp]]]:
    """The files to build: `layer_<i>` (its shape groups in group order) and `post`."""
    layers: dict[int, list[func.FuncOp]] = {}
    units: list[tuple[str, list[func.FuncOp]]] = []
    for op in module.ops:
        if not isinstance(op, func.FuncOp) or not any(isinstance(o, npu.AllocOp) for o in op.body.block.ops):
            continue
        layer = layer_index(op)
        if layer is not None and group_index(op) is not None:
            layers.setdefault(layer, []).append(op)
        else:
            units.append((op.sym_name.data, [op]))
    ordered = [(f"layer_{i}", sorted(fs, key=lambda f: group_index(f) or 0)) for i, fs in sorted(layers.items())]
    return ordered + units


def lower_module(module: ModuleOp, dialect: Dialect, family: str, float_matmul_on_conv: bool = False) -> None:
    """Replace the npu functions of `module` by one `<prefix>.model` per layer and post
    (`float_matmul_on_conv`: float matmuls on the convolution units, `schedule`)."""
    chip = module.attributes.get(TARGET_ATTR)
    mode = module.attributes.get(NPU_MODE_ATTR)
    if not isinstance(chip, StringAttr):
        raise AxcError(f"lower-to-{dialect.name}: the module names no target; run tile{{target=...}} first")
    target = get_target(chip.data, mode.data if isinstance(mode, StringAttr) else "NPU1")
    if target.family != family:
        raise AxcError(
            f"lower-to-{dialect.name}: the module was tiled for {target.chip} ({target.family} family); "
            f"run lower-to-{target.family.lower()} or tile{{target={family}}}"
        )
    ops = ops_by_suffix(dialect)
    cache: dict[Hashable, tuple[ModelOpBase, list[ParamAttr]]] = {}
    for name, functions in lowered_units(module):
        key = tuple(structure_key(f) for f in functions)
        params = [p for f in functions for p in params_in_order(f)]
        if key in cache:
            template, template_params = cache[key]
            model = rebind_model(template, dict(zip(template_params, params, strict=True)), name)
        else:
            model = build_model(name, functions, target, ops, float_matmul_on_conv)
            cache[key] = (model, params)
        Rewriter.insert_op(model, InsertPoint.before(functions[0]))
        for f in functions:
            Rewriter.erase_op(f, safe_erase=False)


def build_model(
    name: str, functions: Sequence[func.FuncOp], target: TargetDescriptor, ops: dict[str, type[IRDLOperation]],
    float_matmul_on_conv: bool = False,
) -> ModelOpBase:
    layout = ParamLayout(target.ddr_alignment)
    groups: list[Operation] = []
    for function in functions:
        program, io = GroupLowering(function, target, layout, float_matmul_on_conv=float_matmul_on_conv).run()
        groups.append(make_group(ops, program, io))
    segments = [
        ops["segment"].create(properties={"param": ParamAttr(*key), "offset": int_prop(offset), "type": layout.types[key]})
        for key, offset in layout.offsets.items()
    ]
    model = ops["model"].build(
        properties={"sym_name": StringAttr(name), "chip": StringAttr(target.chip), "npu_mode": StringAttr(target.npu_mode)},
        regions=[Region(Block([*segments, *groups]))],
    )
    assert isinstance(model, ModelOpBase)
    try:
        model.check()  # what the chip cannot do (e.g. fp8 weights on AX620E) is a diagnostic here
    except AxcError as error:
        raise AxcError(f"lower-to-{ops['model'].name.split('.')[0]}: @{name}: {error}") from None
    return model


def make_group(ops: dict[str, type[IRDLOperation]], program: Program, io: dict[str, Any]) -> Operation:
    def materialise(nodes: Sequence[Node]) -> list[Operation]:
        result: list[Operation] = []
        for node in nodes:
            if isinstance(node, Loop):
                result.append(ops["loop"].create(properties={"trips": int_prop(node.trips)}, regions=[Region(Block(materialise(node.body)))]))
            else:
                result.append(ops[node.op.mnemonic].from_instr(node))  # type: ignore[attr-defined]  # every instruction op of target_dialect has from_instr
        return result

    group = ops["group"].build(
        properties={
            "label": StringAttr(io["label"]),
            "input_names": ArrayAttr([StringAttr(n) for n, _ in io["inputs"]]),
            "input_types": ArrayAttr([t for _, t in io["inputs"]]),
            "output_names": ArrayAttr([StringAttr(n) for n, _ in io["outputs"]]),
            "output_types": ArrayAttr([t for _, t in io["outputs"]]),
            "scratch": int_prop(program.scratch_bytes),
        },
        regions=[Region(Block(materialise(program.body)))],
    )
    assert isinstance(group, GroupOpBase)
    return group


def rebind_model(template: ModelOpBase, mapping: dict[ParamAttr, ParamAttr], name: str) -> ModelOpBase:
    """A clone of `template` for another layer of the same structure."""
    model = template.clone()
    model.sym_name = StringAttr(name)
    for segment in model.segments():
        segment.param = mapping.get(segment.param, segment.param)
    return model


def set_metadata(model: ModelOpBase, metadata: dict[str, str]) -> None:
    model.metadata = DictionaryAttr({k: StringAttr(v) for k, v in sorted(metadata.items())}) if metadata else None
