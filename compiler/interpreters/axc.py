"""numpy semantics of the `axc` dialect: parameters read lazily from the store."""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from axc.dialects.axc import ParamOp
from axc.dtypes import float32
from axc.errors import AxcError
from axc.params import ParamStore


@register_impls
class AxcFunctions(InterpreterFunctions):
    """Materialises `axc.param` values (cached: each layer function is called many times)."""

    def __init__(self, store: ParamStore):
        self.store = store
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    @impl(ParamOp)
    def run_param(self, interpreter: Interpreter, op: ParamOp, args: tuple[Any, ...]):
        key = (op.param.scope.data, op.param.key.data)
        if key not in self.cache:
            declared = tuple(op.result.type.get_shape())
            found = tuple(self.store.shape(*key))
            if found != declared:
                checkpoint = self.store.checkpoint(key[0])
                where = f" in {checkpoint.file(key[1])}" if checkpoint is not None and key[1] in checkpoint else ""
                raise AxcError(
                    f"parameter {key[0]}::{key[1]} has shape {list(found)}{where}, but the IR declares "
                    f"{op.result.type}; the checkpoint changed since the import, import it again"
                )
            value = np.asarray(self.store.get(*key))
            is_float = value.dtype.kind in "fV"  # ml_dtypes' bf16/fp8 are kind "V"
            self.cache[key] = float32(value) if is_float else value
        return (self.cache[key],)
