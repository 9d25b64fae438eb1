"""Run one function of a module on numpy inputs with the interpreters of every level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import DYNAMIC_INDEX, ArrayAttr, ModuleOp, StringAttr
from xdsl.interpreter import Interpreter
from xdsl.interpreters.func import FuncFunctions

from axc.binding import store_for
from axc.dialects.axc import INPUT_NAMES_ATTR, OUTPUT_NAMES_ATTR
from axc.dialects.quant import ACTIVATION_TYPE_ATTR
from axc.dialects.tfm import show
from axc.dtypes import round_result
from axc.errors import AxcError
from axc.interpreters.axc import AxcFunctions
from axc.interpreters.npu import NpuFunctions
from axc.interpreters.quant import QuantFunctions
from axc.interpreters.tfm import TargetTfmFunctions, TfmFunctions
from axc.named_inputs import ordered_inputs
from axc.params import ParamStore


def io_names(function: func.FuncOp, attr: str, count: int, stem: str) -> list[str]:
    names = function.attributes.get(attr)
    if isinstance(names, ArrayAttr):
        return [n.data for n in names.data if isinstance(n, StringAttr)]
    return [f"{stem}{i}" for i in range(count)]


class ModuleRunner:
    """An interpreter over one module, reused across calls (parameters are cached).

    Modules that went through `set-activation-type` run with the target's numerics:
    inputs and every float result are rounded to their element types.
    """

    def __init__(self, module: ModuleOp, store: ParamStore | None = None):
        self.module = module
        self.functions = {
            op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)
        }
        self.target_numerics = ACTIVATION_TYPE_ATTR in module.attributes
        self.interpreter = Interpreter(module)
        self.interpreter.register_implementations(FuncFunctions())
        self.interpreter.register_implementations(
            TargetTfmFunctions() if self.target_numerics else TfmFunctions()
        )
        self.npu = NpuFunctions()
        self.interpreter.register_implementations(self.npu)
        store = store if store is not None else store_for(module)
        self.interpreter.register_implementations(AxcFunctions(store))
        self.interpreter.register_implementations(QuantFunctions(store))

    def function(self, name: str) -> func.FuncOp:
        if name not in self.functions:
            available = ", ".join(self.functions)
            raise AxcError(f"no function @{name} in the module (available: {available})")
        return self.functions[name]

    def input_names(self, name: str) -> list[str]:
        function = self.function(name)
        return io_names(function, INPUT_NAMES_ATTR, len(function.args), "arg")

    def output_names(self, name: str) -> list[str]:
        function = self.function(name)
        count = len(function.function_type.outputs.data)
        return io_names(function, OUTPUT_NAMES_ATTR, count, "result")

    def call(
        self, name: str, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        """Run `@name`; inputs by position or by the function's input names."""
        function = self.function(name)
        args = ordered_inputs(f"@{name}", self.input_names(name), inputs)
        for value, arg_type, index in zip(args, function.function_type.inputs.data, range(len(args))):
            expected = tuple(arg_type.get_shape())  # type: ignore[attr-defined]  # function input types are Attribute; the verifier made them tensors
            if len(expected) != np.ndim(value) or any(
                e != DYNAMIC_INDEX and e != a for e, a in zip(expected, np.shape(value))
            ):
                raise AxcError(
                    f"input {self.input_names(name)[index]} of @{name} has shape "
                    f"{list(np.shape(value))}, expected {show(expected)}"
                )
        if self.target_numerics:
            args = [round_result(np.asarray(a), t) for a, t in zip(args, function.function_type.inputs.data)]
        return [np.asarray(r) for r in self.interpreter.call_op(name, tuple(args))]
