"""`InferenceSession` over `axc.sim.session.AxModelSession`, with pyaxengine's contract.

- `get_inputs/get_outputs(shape_group=g)`: `NodeArg(.name, .shape, .dtype)`, the runtime's
  names in every group (`K_cache`, ..., `K_cache_out`, ...), dtypes as numpy dtypes
  (bf16 = `ml_dtypes.bfloat16`); a group outside the file raises `ValueError` (also an
  `IndexError`, for clients that probe with either).
- `run(output_names, input_feed, run_options=None, shape_group=0)`: every group-0 input
  must be fed (`ValueError`), requested outputs must be group-0 outputs (`ValueError`), an
  unknown group is `ValueError("Invalid shape group: g")`, and each input must match the
  declared shape and dtype exactly (`AssertionError`, naming the tensor, the group, the
  declared and the fed shape and dtype). Results: fresh arrays in the declared dtype, in
  model order (or in the order of `output_names`).

```python
with InferenceSession(path) as session:
    out = session.run(None, {"input": x.astype(ml_dtypes.bfloat16)})[0]
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axc.axmodel import parse_axmodel
from axc.codegen.payload import CONTAINER_DTYPES
from axc.errors import AxcError
from axc.sim.session import AxModelSession

PROVIDERS = ("AxEngineExecutionProvider", "AXCLRTExecutionProvider")
"""pyaxengine's providers: the board's engine and an AXCL card; both run on the simulator here."""


def get_all_providers() -> list[str]:
    return list(PROVIDERS)


def get_available_providers() -> list[str]:
    return list(PROVIDERS)


class SessionOptions:
    """Accepted and ignored, as in pyaxengine."""


@dataclass
class NodeArg:
    """One input or output of a shape group, as the runtime declares it."""

    name: str
    dtype: np.dtype
    shape: list[int] = field(default_factory=list)


class ShapeGroupError(ValueError, IndexError):
    """A shape group the model does not have."""


def provider_name(providers: Sequence[Any] | None) -> str:
    """The first requested provider (a name or `(name, options)`), by default the engine."""
    if not providers:
        return PROVIDERS[0]
    for provider in providers:
        name = provider[0] if isinstance(provider, tuple) else provider
        if name in PROVIDERS:
            return str(name)
    raise ValueError(f"none of the providers {list(providers)} is available; choose from {list(PROVIDERS)}")


class InferenceSession:
    """One `.axmodel` (a path or its bytes) run by the simulator; see the module docstring."""

    def __init__(
        self,
        path_or_bytes: str | bytes | os.PathLike[str],
        sess_options: SessionOptions | None = None,
        providers: Sequence[Any] | None = None,
        provider_options: Sequence[dict[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._provider = provider_name(providers)
        try:
            if isinstance(path_or_bytes, (bytes, bytearray)):
                self._session = AxModelSession(parse_axmodel(bytes(path_or_bytes), "<bytes>"))
            elif isinstance(path_or_bytes, (str, os.PathLike)):
                self._session = AxModelSession(os.fspath(path_or_bytes))
            else:
                raise TypeError(f"Unable to load model from type '{type(path_or_bytes)}'")
        except AxcError as error:
            raise RuntimeError(f"Failed to load model: {error}") from None
        groups = self._session.model.groups
        self._inputs = [[NodeArg(t.name, CONTAINER_DTYPES[t.dtype], list(t.shape)) for t in g.inputs] for g in groups]
        self._outputs = [[NodeArg(t.name, CONTAINER_DTYPES[t.dtype], list(t.shape)) for t in g.outputs] for g in groups]
        self._output_names = [[o.name for o in group] for group in self._outputs]

    def __enter__(self) -> InferenceSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.plans.clear()

    def get_providers(self) -> str:
        return self._provider

    def _group(self, shape_group: int) -> int:
        if not isinstance(shape_group, (int, np.integer)) or not 0 <= shape_group < len(self._inputs):
            raise ShapeGroupError(f"Shape group '{shape_group}' is out of range, total {len(self._inputs)}.")
        return shape_group

    def get_inputs(self, shape_group: int = 0) -> list[NodeArg]:
        return self._inputs[self._group(shape_group)]

    def get_outputs(self, shape_group: int = 0) -> list[NodeArg]:
        return self._outputs[self._group(shape_group)]

    def run(
        self,
        output_names: Sequence[str] | None,
        input_feed: Mapping[str, np.ndarray],
        run_options: Any = None,
        shape_group: int = 0,
    ) -> list[np.ndarray]:
        missing = [i.name for i in self._inputs[0] if i.name not in input_feed]
        if missing:
            raise ValueError(f"Required inputs ({missing}) are missing from input feed ({list(input_feed)}).")
        if output_names is not None:
            for name in output_names:
                if name not in self._output_names[0]:
                    raise ValueError(f"Output name '{name}' is not in model outputs name list.")
        if not isinstance(shape_group, (int, np.integer)) or not 0 <= shape_group < len(self._inputs):
            raise ValueError(f"Invalid shape group: {shape_group}")
        values = []
        for declared in self._inputs[shape_group]:
            value = input_feed.get(declared.name)
            if value is None:
                raise ValueError(f"Required input {declared.name!r} of shape group {shape_group} is missing from the input feed.")
            shape = getattr(value, "shape", None)
            if shape is None or list(shape) != declared.shape or value.dtype != declared.dtype:
                raise AssertionError(
                    f"model inputs({declared.name}) of shape group {shape_group} expect shape {declared.shape} and "
                    f"dtype {declared.dtype}, however gets input with shape {None if shape is None else list(shape)} "
                    f"and dtype {getattr(value, 'dtype', type(value).__name__)}"
                )
            values.append(value)
        names = self._output_names[shape_group]
        if output_names is not None and sorted(output_names) != sorted(names):
            raise ValueError(f"output_names {list(output_names)} must name every output of shape group {shape_group}: {names}")
        results = self._session.run(shape_group, values, as_stored=True)
        return [results[name] for name in (names if output_names is None else output_names)]
