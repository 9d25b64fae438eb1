"""numpy execution of the `npu` dialect, tile by tile, with cost counters per function.

Buffers are flat arrays (`axc.npu_semantics`); once `allocate-ocm` has placed them, OCM
buffers are views into one arena per function, so two live buffers that overlap corrupt
each other's data exactly as they would on the chip. DMAs run to completion when issued
(barriers only count); `Counters` per function record DDR bytes, MACs and vector work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, TensorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Operation

from axc import npu_semantics as sem
from axc.dialects import npu
from axc.dialects.axc import ParamOp
from axc.interpreters.tfm import rope_spec
from axc.ir_utils import enclosing_function
from axc.params import ParamStore

if TYPE_CHECKING:
    from rich.table import Table


def function_of(op: Operation) -> func.FuncOp:
    function = enclosing_function(op)
    assert isinstance(function, func.FuncOp)
    return function


@register_impls
class NpuFunctions(InterpreterFunctions):
    def __init__(self) -> None:
        self.counters: dict[str, sem.Counters] = {}
        self._function: dict[Operation, str] = {}
        self._ddr: dict[int, tuple[Any, np.ndarray]] = {}
        self._arenas: dict[str, tuple[np.ndarray, set[Operation]]] = {}

    # -- bookkeeping --

    def counter(self, op: Operation) -> sem.Counters:
        name = self._function.get(op)
        if name is None:
            name = self._function[op] = function_of(op).sym_name.data
        counters = self.counters.get(name)
        if counters is None:
            counters = self.counters[name] = sem.Counters()
        return counters

    def memory(self, value: Any, type_: Any) -> np.ndarray:
        """Flat storage of a buffer or a DDR tensor (tensors converted once per array)."""
        if isinstance(type_, npu.BufferType):
            return value
        assert isinstance(type_, TensorType)
        dtype = sem.storage_dtype(type_.get_element_type())
        cached = self._ddr.get(id(value))
        if cached is not None and cached[0] is value and cached[1].dtype == dtype:
            return cached[1]
        memory = sem.flat(value, dtype)
        self._ddr[id(value)] = (value, memory)
        return memory

    def views(self, op: npu.AccessOp, args: tuple[Any, ...]) -> dict[str, np.ndarray]:
        names = op.operand_names()
        ivs = args[len(names) :]
        result: dict[str, np.ndarray] = {}
        for (name, value, view), arg in zip(op.accesses(), args):
            coeffs = view.coeffs
            offset = coeffs[0] + sum(c * i for c, i in zip(coeffs[1:], ivs))
            result[name] = sem.view(self.memory(arg, value.type), offset, view.sizes, view.strides)
        return result

    def vector(self, op: npu.AccessOp, views: dict[str, np.ndarray]) -> None:
        self.counter(op).vector_ops += max(v.size for v in views.values())

    # -- memory and data movement --

    @impl(npu.AllocOp)
    def run_alloc(self, interpreter: Interpreter, op: npu.AllocOp, args: tuple[Any, ...]):
        type_ = op.buffer_type
        dtype = sem.storage_dtype(type_.element_type)
        function = function_of(op)
        name = function.sym_name.data
        arena = self._arenas.get(name)
        if arena is None or op in arena[1]:  # allocs run once per call: a new call, fresh OCM
            size = function.attributes.get(npu.OCM_BYTES_ATTR)
            memory = np.full(size.value.data if isinstance(size, IntegerAttr) else 0, sem.FILL_BYTE, np.uint8)
            arena = self._arenas[name] = (memory, set())
            self.counter(op).calls += 1
        arena[1].add(op)
        if op.offset is None:
            return (sem.fresh(type_.numel, dtype),)
        start = op.offset.value.data
        raw = arena[0][start : start + type_.numel * dtype.itemsize]
        return (raw.view(dtype),)

    @impl(npu.DmaLoadOp)
    def run_dma_load(self, interpreter: Interpreter, op: npu.DmaLoadOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.dma(v["dst"], v["src"])
        counters = self.counter(op)
        counters.ddr_read += sem.nbytes(v["src"])
        counters.dma_ops += 1
        return ()

    @impl(npu.DmaStoreOp)
    def run_dma_store(self, interpreter: Interpreter, op: npu.DmaStoreOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.dma(v["dst"], v["src"])
        counters = self.counter(op)
        counters.ddr_write += sem.nbytes(v["src"])
        counters.dma_ops += 1
        return ()

    @impl(npu.ToTensorOp)
    def run_to_tensor(self, interpreter: Interpreter, op: npu.ToTensorOp, args: tuple[Any, ...]):
        type_ = op.buffer.type
        assert isinstance(type_, npu.BufferType)
        array = args[0].reshape(type_.get_shape())
        return (array.astype(np.float32) if array.dtype.kind not in "iub" else array.copy(),)

    @impl(npu.BarrierOp)
    def run_barrier(self, interpreter: Interpreter, op: npu.BarrierOp, args: tuple[Any, ...]):
        self.counter(op).barriers += 1
        return ()

    @impl(npu.LoopOp)
    def run_loop(self, interpreter: Interpreter, op: npu.LoopOp, args: tuple[Any, ...]):
        for i in op.iterations():
            interpreter.run_ssacfg_region(op.body, (i,), "npu.loop")
        return ()

    # -- matrix engine --

    @impl(npu.MatmulOp)
    def run_matmul(self, interpreter: Interpreter, op: npu.MatmulOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        fmt = op.format.data
        macs = sem.matmul(
            v["out"],
            v["lhs"],
            v["rhs"],
            fmt=fmt,
            scales=v.get("scales"),
            zeros=v.get("zeros"),
            bias=v.get("bias"),
            group=op.group.value.data,
            alpha=op.alpha.value.data,
            transpose_b=op.transpose_b is not None,
            accumulate=op.accumulate is not None,
        )
        self.counter(op).add_macs(fmt, macs)
        return ()

    # -- vector engine --

    @impl(npu.FillOp)
    def run_fill(self, interpreter: Interpreter, op: npu.FillOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.fill(v["out"], op.value.value.data)
        self.vector(op, v)
        return ()

    @impl(npu.CastOp)
    def run_cast(self, interpreter: Interpreter, op: npu.CastOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.cast(v["out"], v["input"])
        self.vector(op, v)
        return ()

    @impl(npu.AddOp)
    def run_add(self, interpreter: Interpreter, op: npu.AddOp, args: tuple[Any, ...]):
        return self.binary("add", op, args)

    @impl(npu.MulOp)
    def run_mul(self, interpreter: Interpreter, op: npu.MulOp, args: tuple[Any, ...]):
        return self.binary("mul", op, args)

    @impl(npu.DivOp)
    def run_div(self, interpreter: Interpreter, op: npu.DivOp, args: tuple[Any, ...]):
        return self.binary("div", op, args)

    def binary(self, kind: str, op: npu.AccessOp, args: tuple[Any, ...]) -> tuple[()]:
        v = self.views(op, args)
        sem.binary(kind, v["out"], v["lhs"], v["rhs"])
        self.vector(op, v)
        return ()

    @impl(npu.ActOp)
    def run_act(self, interpreter: Interpreter, op: npu.ActOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.act(v["out"], v["input"], op.kind.data)
        self.vector(op, v)
        return ()

    @impl(npu.SoftcapOp)
    def run_softcap(self, interpreter: Interpreter, op: npu.SoftcapOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.softcap(v["out"], v["input"], op.cap.value.data)
        self.vector(op, v)
        return ()

    @impl(npu.IotaOp)
    def run_iota(self, interpreter: Interpreter, op: npu.IotaOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.iota(v["out"])
        self.vector(op, v)
        return ()

    @impl(npu.WindowMaskOp)
    def run_window_mask(self, interpreter: Interpreter, op: npu.WindowMaskOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.window_mask(v["out"], v["scores"], v["query_positions"], v["key_positions"], op.window.value.data)
        self.vector(op, v)
        return ()

    @impl(npu.ActMulOp)
    def run_act_mul(self, interpreter: Interpreter, op: npu.ActMulOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.act_mul(v["out"], v["gate"], v["up"], op.kind.data)
        self.vector(op, v)
        return ()

    @impl(npu.RMSNormOp)
    def run_rms_norm(self, interpreter: Interpreter, op: npu.RMSNormOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.rms_norm(v["out"], v["input"], v["weight"], op.eps.value.data)
        self.vector(op, v)
        return ()

    @impl(npu.AddRMSNormOp)
    def run_add_rms_norm(self, interpreter: Interpreter, op: npu.AddRMSNormOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.add_rms_norm(v["sum"], v["out"], v["lhs"], v["rhs"], v["weight"], op.eps.value.data)
        self.vector(op, v)
        return ()

    @impl(npu.HeadNormOp)
    def run_head_norm(self, interpreter: Interpreter, op: npu.HeadNormOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.head_norm(v["out"], v["input"], v["weight"], op.eps.value.data, op.head_dim.value.data)
        self.vector(op, v)
        return ()

    @impl(npu.LayerNormOp)
    def run_layer_norm(self, interpreter: Interpreter, op: npu.LayerNormOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.layer_norm(v["out"], v["input"], v["weight"], v.get("bias"), op.eps.value.data)
        self.vector(op, v)
        return ()

    @impl(npu.RopeOp)
    def run_rope(self, interpreter: Interpreter, op: npu.RopeOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.rope(v["out"], v["input"], v["positions"], op.num_heads.value.data, rope_spec(op), v.get("ext_factors"))
        self.vector(op, v)
        return ()

    @impl(npu.OnlineSoftmaxOp)
    def run_online_softmax(self, interpreter: Interpreter, op: npu.OnlineSoftmaxOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.online_softmax(v["probs"], v["max"], v["sum"], v["corr"], v["scores"])
        self.vector(op, v)
        return ()

    @impl(npu.GatherOp)
    def run_gather(self, interpreter: Interpreter, op: npu.GatherOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.gather(v["out"], v["input"], v["indices"])
        self.vector(op, v)
        return ()

    @impl(npu.TopKOp)
    def run_topk(self, interpreter: Interpreter, op: npu.TopKOp, args: tuple[Any, ...]):
        v = self.views(op, args)
        sem.topk(v["values"], v["indices"], v["input"], op.k.value.data)
        self.vector(op, v)
        return ()


def counters_table(counters: dict[str, sem.Counters]) -> Table:
    """A rich table of per-call costs, one row per function."""
    from rich.table import Table

    table = Table(title="npu counters per call")
    for column in ("function", "calls", "DDR read", "DDR write", "DMAs", "matrix MACs", "vector ops", "barriers"):
        table.add_column(column, justify="left" if column == "function" else "right", no_wrap=True)
    for name, total in sorted(counters.items()):
        c = total.per_call()
        macs = ", ".join(f"{fmt} {count:,}" for fmt, count in sorted(c.macs.items())) or "0"
        table.add_row(
            name, str(total.calls), size(c.ddr_read), size(c.ddr_write), f"{c.dma_ops:,}", macs,
            f"{c.vector_ops:,}", f"{c.barriers:,}",
        )
    return table


def size(count: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count} B"


def minimum_read_bytes(function: func.FuncOp, store: ParamStore) -> int:
    """The DDR bytes a call must read at least: every parameter it names and every input,
    each once, in their stored types (the denominator of the traffic ratio); an input the
    function never reads (a history-0 group's dummy cache) counts nothing."""
    params = {op.param for op in function.body.walk() if isinstance(op, ParamOp)}
    total = sum(
        int(np.prod(store.shape(p.scope.data, p.key.data))) * store.dtype(p.scope.data, p.key.data).itemsize
        for p in params
    )
    for arg in function.body.block.args:
        type_ = arg.type
        if not arg.uses:
            continue
        assert isinstance(type_, TensorType)
        total += int(np.prod(type_.get_shape())) * sem.storage_dtype(type_.get_element_type()).itemsize
    return total


def minimum_write_bytes(function: func.FuncOp) -> int:
    """The DDR bytes a call must write at least: every output once, in its stored type."""
    total = 0
    for type_ in function.function_type.outputs.data:
        assert isinstance(type_, TensorType)
        total += int(np.prod(type_.get_shape())) * sem.storage_dtype(type_.get_element_type()).itemsize
    return total


def traffic_ratio(function: func.FuncOp, counters: sem.Counters, store: ParamStore) -> float:
    """DDR bytes one call moved (read and written) over the least it could move: every
    parameter, input and output byte once (1.0 = nothing spilled or read twice)."""
    c = counters.per_call()
    return (c.ddr_read + c.ddr_write) / (minimum_read_bytes(function, store) + minimum_write_bytes(function))
