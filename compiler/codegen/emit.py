"""Target IR → `.axmodel`: one `<chip>.model` becomes the container's groups, command
streams (`encoding.encode_program`) and parameter blob (`encoding.params_layout`), filled from the
module's parameter store. Deterministic: the same IR and weights give the same bytes.

```python
model = find_model(module, "layer_0")
write_model(Path("qwen2_p128_l0_together.axmodel"), model, store_for(module))  # streams the parameters
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.utils.exceptions import VerifyException

from axc.axmodel import AxModel, GroupSpec, TensorSpec, write_axmodel_streamed
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


STREAM_BYTES = 16 << 20
"""Emission streams a parameter about this many bytes of rows at a time."""


def params_chunks(model: ModelOpBase, store: ParamStore) -> tuple[int, Iterator[bytes | memoryview]]:
    """The parameter blob's size, and its bytes in pieces: header, segment table, names and
    the data area with every parameter in place, each read (and quantized) a few rows at a time."""
    alignment = model.target().ddr_alignment
    segments = [op.segment(name) for op, name in zip(model.segments(), model.segment_names())]
    prefix, data_bytes = encoding.params_layout(segments, alignment)
    ops = list(model.segments())
    for op, segment in zip(ops, segments):
        scope, key = op.param.scope.data, op.param.key.data
        shape = tuple(store.shape(scope, key))
        if shape != segment.shape:
            raise AxcError(f"parameter {scope}::{key} has shape {list(shape)}, the IR places {list(segment.shape)}")

    def pieces() -> Iterator[bytes | memoryview]:
        yield prefix
        position = 0
        for op, segment in zip(ops, segments):
            scope, key = op.param.scope.data, op.param.key.data
            dtype = storage_dtype(op.type.get_element_type())
            yield bytes(segment.offset - position)
            if not segment.shape:
                parts: Iterator[np.ndarray] = iter([np.asarray(store.get(scope, key))])
            else:
                step = max(1, STREAM_BYTES // max(1, segment.nbytes // max(1, segment.shape[0])))
                parts = (store.rows(scope, key, start, start + step) for start in range(0, segment.shape[0], step))
            for part in parts:
                part = np.ascontiguousarray(np.asarray(part).astype(dtype, copy=False))
                yield memoryview(part.reshape(-1).view(np.uint8))  # type: ignore[arg-type]  # ndarray is a buffer; numpy's stubs lack __buffer__
            position = segment.end
        yield bytes(data_bytes - position)

    return len(prefix) + data_bytes, pieces()


def params_blob(model: ModelOpBase, store: ParamStore) -> bytes:
    """Header, segment table, names and the data area with every parameter in place."""
    return b"".join(params_chunks(model, store)[1])


def _checked(model: ModelOpBase) -> AxModel:
    """The `.axmodel` of one target model without its parameter blob (checked as the decoder will check it)."""
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
    return AxModel(tuple(groups), b"", metadata)


def to_axmodel(model: ModelOpBase, store: ParamStore) -> AxModel:
    """The `.axmodel` of one target model (checked as the decoder will check it)."""
    return replace(_checked(model), params=params_blob(model, store))


def write_model(path: Path, model: ModelOpBase, store: ParamStore) -> None:
    """Write the `.axmodel` of one target model, streaming its parameters (the bytes of
    `write_axmodel(path, to_axmodel(model, store))`, never the whole blob in memory)."""
    checked = _checked(model)
    size, pieces = params_chunks(model, store)
    write_axmodel_streamed(path, checked, size, pieces)


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
    paths = []
    for model in find_models(module):
        path = out_dir / file_name(model, model_type, prefill_len)
        write_model(path, model, store)
        paths.append(path)
    return paths
