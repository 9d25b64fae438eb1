"""Target IR → `.axmodel`: one `<chip>.model` becomes the container's groups, command
streams (`encoding.encode_program`) and parameter blob (`encoding.params_layout`), filled from the
module's parameter store. Deterministic: the same IR and weights give the same bytes.

```python
model = find_model(module, "layer_0")
write_axmodel("qwen2_p128_l0_together.axmodel", to_axmodel(model, store_for(module)))
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.utils.exceptions import VerifyException

from axc.axmodel import AxModel, GroupSpec, TensorSpec
from axc.isa import encoding
from axc.codegen.payload import CONTAINER_NAMES
from axc.dialects.axc import POST
from axc.dialects.axtarget import ModelOpBase
from axc.dtypes import numpy_dtype
from axc.errors import AxcError
from axc.npu_semantics import storage_dtype
from axc.params import ParamStore
from axc.runtime_contract import layer_filename, post_filename


def find_models(module: ModuleOp) -> list[ModelOpBase]:
    return [op for op in module.ops if isinstance(op, ModelOpBase)]


def find_model(module: ModuleOp, name: str | None = None) -> ModelOpBase:
    """The model `name`, or the only model of `module`."""
    models = find_models(module)
    names = [m.sym_name.data for m in models]
    if not models:
        raise AxcError("the module holds no ax650.model or ax620e.model; run lower-to-ax650 or lower-to-ax620e first")
    if name is None:
        if len(models) > 1:
            raise AxcError(f"the module holds {len(models)} models ({', '.join(names)}); pick one with --model NAME")
        return models[0]
    if name not in names:
        raise AxcError(f"no model @{name} in the module (available: {', '.join(names)})")
    return models[names.index(name)]


def tensor_spec(name: str, type_: TensorType) -> TensorSpec:
    dtype = numpy_dtype(type_.get_element_type())
    if dtype not in CONTAINER_NAMES:
        raise AxcError(f"I/O {name} has element type {type_.get_element_type()}, which an .axmodel cannot carry")
    return TensorSpec(name, CONTAINER_NAMES[dtype], tuple(type_.get_shape()))


def params_blob(model: ModelOpBase, store: ParamStore) -> bytes:
    """Header, segment table, names and the data area with every parameter in place."""
    alignment = model.target().ddr_alignment
    segments = [op.segment(name) for op, name in zip(model.segments(), model.segment_names())]
    prefix, data_bytes = encoding.params_layout(segments, alignment)
    chunks: list[bytes | memoryview] = [prefix]
    position = 0
    for op, segment in zip(model.segments(), segments):
        scope, key = op.param.scope.data, op.param.key.data
        array = np.asarray(store.get(scope, key))
        if array.shape != segment.shape:
            raise AxcError(f"parameter {scope}::{key} has shape {list(array.shape)}, the IR places {list(segment.shape)}")
        array = np.ascontiguousarray(array.astype(storage_dtype(op.type.get_element_type()), copy=False))
        chunks.append(bytes(segment.offset - position))
        chunks.append(memoryview(array.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]  # ndarray is a buffer; numpy's stubs lack __buffer__
        position = segment.end
    chunks.append(bytes(data_bytes - position))
    return b"".join(chunks)


def to_axmodel(model: ModelOpBase, store: ParamStore) -> AxModel:
    """The `.axmodel` of one target model (checked as the decoder will check it)."""
    try:
        programs = model.check()
    except VerifyException as error:
        raise AxcError(str(error)) from None
    except AxcError as error:
        raise AxcError(f"@{model.sym_name.data}: {error}") from None
    groups = [
        GroupSpec(
            group.label.data,
            tuple(tensor_spec(n, t) for n, t in group.inputs()),
            tuple(tensor_spec(n, t) for n, t in group.outputs()),
            encoding.encode_program(program),
        )
        for group, program in zip(model.groups(), programs)
    ]
    metadata = {**model.metadata_dict(), "chip": model.chip.data, "npu_mode": model.npu_mode.data}
    return AxModel(tuple(groups), params_blob(model, store), metadata)


def file_name(model: ModelOpBase, model_type: str, prefill_len: int) -> str:
    """The runtime's file name of a lowered unit (`layer_<i>` or `post`)."""
    name = model.sym_name.data
    if name.startswith("layer_") and name[6:].isdecimal():
        return layer_filename(model_type, prefill_len, int(name[6:]))
    if name == POST:
        return post_filename(model_type)
    return f"{name}.axmodel"


def write_model_files(module: ModuleOp, store: ParamStore, out_dir: Path, model_type: str, prefill_len: int) -> list[Path]:
    """Every model of a lowered module as an `.axmodel` under its runtime name."""
    from axc.axmodel import write_axmodel

    paths = []
    for model in find_models(module):
        path = out_dir / file_name(model, model_type, prefill_len)
        write_axmodel(path, to_axmodel(model, store))
        paths.append(path)
    return paths
