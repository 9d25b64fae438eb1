"""`.axmodel` → target IR (the disassembler behind `axc-translate --import-axmodel`).

The file's parameter blob becomes a safetensors file whose keys are the segment names
(scope `npu_params`), so emitting the imported IR gives the same bytes back:

```python
module, arrays = disassemble(read_payload("l0.axmodel"), "l0")
```
"""

from __future__ import annotations

import re

import numpy as np
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr, TensorType
from xdsl.irdl import IRDLOperation
from xdsl.ir import Attribute, Block, Operation, Region

from axc import isa
from axc.codegen.lowering import make_group
from axc.codegen.payload import CONTAINER_DTYPES, Payload
from axc.dialects.axc import ParamAttr, set_module_scopes
from axc.dialects.axtarget import ELEMENT_TYPES, int_prop, ops_by_suffix
from axc.params import ParamStore

PARAM_SCOPE = "npu_params"


def dialect_ops(family: str) -> dict[str, type[IRDLOperation]]:
    if family == "AX650":
        from axc.dialects.ax650 import AX650 as dialect
    else:
        from axc.dialects.ax620e import AX620E as dialect
    return ops_by_suffix(dialect)


def io_type(dtype: str, shape: tuple[int, ...]) -> TensorType:
    return TensorType(ELEMENT_TYPES[isa.CODE_OF_DTYPE[CONTAINER_DTYPES[dtype]]], shape)


def symbol(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return text if text and not text[0].isdigit() else f"m_{text}"


def disassemble(payload: Payload, name: str = "model") -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """The target module of a decoded file and the parameter arrays its segments name."""
    ops = dialect_ops(payload.target.family)
    data = payload.data()
    arrays: dict[str, np.ndarray] = {}
    body: list[Operation] = []
    for segment in payload.params.segments:
        dtype = isa.DTYPE_OF_CODE[segment.dtype]
        arrays[segment.name] = data[segment.offset : segment.end].view(dtype).reshape(segment.shape)
        body.append(
            ops["segment"].create(
                properties={
                    "param": ParamAttr(PARAM_SCOPE, segment.name),
                    "offset": int_prop(segment.offset),
                    "type": TensorType(ELEMENT_TYPES[segment.dtype], segment.shape),
                }
            )
        )
    for group, program in zip(payload.model.groups, payload.programs):
        io = {
            "label": group.name,
            "inputs": [(t.name, io_type(t.dtype, t.shape)) for t in group.inputs],
            "outputs": [(t.name, io_type(t.dtype, t.shape)) for t in group.outputs],
        }
        body.append(make_group(ops, program, io))
    metadata = {k: v for k, v in payload.model.metadata.items() if k not in ("chip", "npu_mode")}
    props: dict[str, Attribute] = {
        "sym_name": StringAttr(symbol(name)),
        "chip": StringAttr(payload.model.metadata["chip"]),
        "npu_mode": StringAttr(payload.model.metadata["npu_mode"]),
    }
    if metadata:
        props["metadata"] = DictionaryAttr({k: StringAttr(v) for k, v in sorted(metadata.items())})
    model = ops["model"].build(properties=props, regions=[Region(Block(body))])
    module = ModuleOp([model])
    return module, arrays


def save_params(module: ModuleOp, arrays: dict[str, np.ndarray], path: str) -> None:
    """Write the segment arrays as safetensors and bind the `npu_params` scope to them."""
    store = ParamStore()
    for key, array in arrays.items():
        store.add(PARAM_SCOPE, key, np.ascontiguousarray(array))
    written = store.save(path, PARAM_SCOPE)
    set_module_scopes(module, {PARAM_SCOPE: str(written.resolve())})
