"""numpy semantics of the `quant` dialect, with the numerics the target will have.

A `quant.weight` value is its exact fp32 dequantization `[out, in]` in the original input
order (cached per weight); `quant.linear` accumulates `x @ W.T (+ bias)` in fp32 and rounds
the result to its element type (bf16/fp16 round to nearest even through `ml_dtypes`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from axc import kernels
from axc.dialects import quant
from axc.dtypes import round_result
from axc.params import ParamStore
from axc.quantization import QuantizedWeight, dequantize


def describe(op: quant.WeightOp) -> str:
    data = op.data
    return f'quant.weight <"{data.scope.data}"::"{data.key.data}">'


@register_impls
class QuantFunctions(InterpreterFunctions):
    def __init__(self, store: ParamStore):
        self.store = store
        self.cache: dict[tuple[Any, ...], np.ndarray] = {}

    def stored(self, op: quant.WeightOp) -> QuantizedWeight:
        """The arrays behind a `quant.weight`, checked against its type."""
        arrays = {role: np.asarray(self.store.get(p.scope.data, p.key.data)) for role, p in op.params().items()}
        weight = QuantizedWeight(op.weight_type.spec, **arrays)
        weight.check(describe(op))
        return weight

    @impl(quant.WeightOp)
    def run_weight(self, interpreter: Interpreter, op: quant.WeightOp, args: tuple[Any, ...]):
        key = (op.weight_type, *((p.scope.data, p.key.data) for p in op.params().values()))
        if key not in self.cache:
            self.cache[key] = dequantize(self.stored(op))
        return (self.cache[key],)

    @impl(quant.LinearOp)
    def run_linear(self, interpreter: Interpreter, op: quant.LinearOp, args: tuple[Any, ...]):
        x, weight, *bias = args
        out = kernels.linear(np.asarray(x, np.float32), weight, np.asarray(bias[0], np.float32) if bias else None)
        return (round_result(out, op.result.type),)

    @impl(quant.DequantOp)
    def run_dequant(self, interpreter: Interpreter, op: quant.DequantOp, args: tuple[Any, ...]):
        return (args[0],)
