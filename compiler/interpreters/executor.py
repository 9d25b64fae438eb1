"""`LayerExecutor` over a specialised module, run by the interpreters."""

from __future__ import annotations

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, IntegerAttr, ModuleOp

from axc.dialects.axc import EMBED, HISTORIES_ATTR, KV_CACHE_LEN_ATTR, NUM_LAYERS_ATTR, POST, PREFILL_LEN_ATTR
from axc.errors import AxcError
from axc.hostloop import GroupLayout
from axc.interpreters.runner import ModuleRunner
from axc.params import ParamStore


def int_attr(module: ModuleOp, name: str) -> int:
    attr = module.attributes.get(name)
    if not isinstance(attr, IntegerAttr):
        raise AxcError(f"module has no {name} attribute; run specialize-groups first")
    return attr.value.data


def group_layout(module: ModuleOp) -> GroupLayout:
    """The shape groups `specialize-groups` made, read back from the module."""
    histories = module.attributes.get(HISTORIES_ATTR)
    if not isinstance(histories, ArrayAttr):
        raise AxcError("module has no shape groups; run specialize-groups first")
    layer0 = next(
        op
        for op in module.ops
        if isinstance(op, func.FuncOp) and op.sym_name.data == "layer_0_g0"
    )
    inputs = layer0.function_type.inputs.data
    kv_dim = inputs[0].get_shape()[-1]  # type: ignore[attr-defined]  # function input types are Attribute; layer inputs are tensors
    return GroupLayout(
        num_layers=int_attr(module, NUM_LAYERS_ATTR),
        kv_dim=kv_dim,
        kv_cache_len=int_attr(module, KV_CACHE_LEN_ATTR),
        prefill_len=int_attr(module, PREFILL_LEN_ATTR),
        histories=tuple(h.value.data for h in histories.data),
        hidden_size=inputs[3].get_shape()[-1],  # type: ignore[attr-defined]  # function input types are Attribute; layer inputs are tensors
    )


class ModuleExecutor:
    """Runs `@embed`, `@layer_<i>_g<k>` and `@post` of a module in the interpreter."""

    def __init__(self, module: ModuleOp, store: ParamStore | None = None):
        self.runner = ModuleRunner(module, store)
        self.layout = group_layout(module)

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        return self.runner.call(EMBED, [np.asarray(token_ids, np.uint32)[None, :]])[0]

    def run_layer(self, layer: int, group: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        name = f"layer_{layer}_g{group}"
        outputs = self.runner.call(name, inputs)
        return dict(zip(self.runner.output_names(name), outputs, strict=True))

    def post(self, hidden: np.ndarray) -> np.ndarray:
        return self.runner.call(POST, [hidden])[0]
