"""Lazy checkpoint access and the parameter store.

`Checkpoint` reads Hugging Face weights (single or sharded safetensors or `pytorch_model.bin`)
one tensor at a time; opening reads only headers. `ParamStore` binds IR parameter scopes to
checkpoints and keeps the tensors that passes create.

Saved parameter files hold ONE scope each: the safetensors keys are the parameter keys as
they are, and the header metadata records the scope under `axc.scope`.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import ml_dtypes
import numpy as np
import safetensors.numpy
from safetensors import SafetensorError, safe_open

from axc.errors import AxcError
from axc.jsonio import read_json

if TYPE_CHECKING:
    import torch

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
SCOPE_METADATA_KEY = "axc.scope"

# (safetensors dtype, numpy dtype, torch dtype name); bf16/fp8 are ml_dtypes types, and
# torch is imported only to read `.bin` files, so safetensors work stays fast.
_DTYPES: tuple[tuple[str, np.dtype, str], ...] = tuple(
    (name, np.dtype(np_type), torch_name)
    for name, np_type, torch_name in (
        ("BOOL", np.bool_, "bool"),
        ("U8", np.uint8, "uint8"),
        ("I8", np.int8, "int8"),
        ("I16", np.int16, "int16"),
        ("U16", np.uint16, "uint16"),
        ("I32", np.int32, "int32"),
        ("U32", np.uint32, "uint32"),
        ("I64", np.int64, "int64"),
        ("U64", np.uint64, "uint64"),
        ("F16", np.float16, "float16"),
        ("BF16", ml_dtypes.bfloat16, "bfloat16"),
        ("F32", np.float32, "float32"),
        ("F64", np.float64, "float64"),
        ("F8_E4M3", ml_dtypes.float8_e4m3fn, "float8_e4m3fn"),
        ("F8_E5M2", ml_dtypes.float8_e5m2, "float8_e5m2"),
    )
)
_NUMPY_OF_SAFETENSORS = {name: np_type for name, np_type, _ in _DTYPES}


@cache
def _numpy_of_torch() -> dict[Any, np.dtype]:
    import torch

    return {getattr(torch, torch_name): np_type for _, np_type, torch_name in _DTYPES}


def _numpy_dtype(table: Mapping[Any, np.dtype], dtype: object, key: str, path: Path) -> np.dtype:
    if dtype not in table:
        raise AxcError(f"tensor {key} in {path} has unsupported dtype {dtype}; convert the checkpoint")
    return table[dtype]


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU torch tensor as a numpy array of the same dtype (bf16/fp8 via `ml_dtypes`)."""
    import torch

    np_dtype = _numpy_of_torch()[tensor.dtype]
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
    return raw.view(np_dtype).reshape(tuple(tensor.shape))


class _WeightsFile(Protocol):
    path: Path

    def keys(self) -> list[str]: ...

    def shape(self, key: str) -> tuple[int, ...]: ...

    def dtype(self, key: str) -> np.dtype: ...

    def get(self, key: str) -> np.ndarray: ...

    def rows(self, key: str, start: int, stop: int) -> np.ndarray: ...

    def close(self) -> None: ...


class _SafetensorsFile:
    """One safetensors file: `safe_open` checks it and gives names, shapes and dtypes.

    Tensors are read with one positioned read each rather than through the memory map, so
    a tensor a pass streams through leaves no file pages in the process's resident set.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._handle = safe_open(str(path), framework="numpy")
        except SafetensorError as error:
            raise AxcError(
                f"corrupt or truncated safetensors file: {path} ({error}); re-download or re-export it"
            ) from None
        with path.open("rb") as stream:
            (size,) = struct.unpack("<Q", stream.read(8))
            header = json.loads(stream.read(size))
        self._extents = {
            key: (8 + size + info["data_offsets"][0], info["data_offsets"][1] - info["data_offsets"][0])
            for key, info in header.items()
            if key != "__metadata__"
        }

    def keys(self) -> list[str]:
        return list(self._handle.keys())

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._handle.get_slice(key).get_shape())

    def dtype(self, key: str) -> np.dtype:
        return _numpy_dtype(_NUMPY_OF_SAFETENSORS, self._handle.get_slice(key).get_dtype(), key, self.path)

    def get(self, key: str) -> np.ndarray:
        dtype, (offset, size) = self.dtype(key), self._extents[key]
        raw = np.fromfile(self.path, dtype=np.uint8, count=size, offset=offset)
        if raw.size != size:
            raise AxcError(
                f"corrupt or truncated safetensors file: {self.path} (tensor {key} is cut short); re-download it"
            )
        return raw.view(dtype).reshape(self.shape(key))

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows `start:stop` of a tensor (its first axis), with one positioned read."""
        dtype, (offset, size), shape = self.dtype(key), self._extents[key], self.shape(key)
        if not shape:
            return self.get(key)
        start, stop, _ = slice(start, stop).indices(shape[0])
        stop = max(start, stop)
        row = size // shape[0] if shape[0] else 0
        raw = np.fromfile(self.path, dtype=np.uint8, count=(stop - start) * row, offset=offset + start * row)
        if raw.size != (stop - start) * row:
            raise AxcError(
                f"corrupt or truncated safetensors file: {self.path} (tensor {key} is cut short); re-download it"
            )
        return raw.view(dtype).reshape((stop - start, *shape[1:]))

    def close(self) -> None:
        self._handle.__exit__(None, None, None)


def _corrupt_bin(path: Path, detail: str) -> AxcError:
    return AxcError(f"corrupt or unreadable PyTorch checkpoint: {path} ({detail}); re-download or re-export it")


UNSUPPORTED_GLOBAL = re.compile(r"(?:Unsupported global: |unsupported )GLOBAL (.*?) (?:was not an allowed|whose module)", re.DOTALL)
"""torch's refusal of a pickled global outside its weights-only allowlist (or blocked), naming it."""


class _TorchFile:
    """One `pytorch_model.bin` state dict, loaded with `weights_only=True` and memory-mapped."""

    def __init__(self, path: Path) -> None:
        import torch

        self.path = path
        state = self._load(path)
        if not isinstance(state, dict):
            raise AxcError(
                f"{path} holds a {type(state).__name__}, not a state dict of tensors; re-export the checkpoint"
            )
        for key, value in state.items():
            if not isinstance(key, str):
                raise AxcError(
                    f"{path} holds a value under the non-string key {key!r} ({type(key).__name__}); "
                    "re-export the checkpoint as a plain state dict or as safetensors"
                )
            if not isinstance(value, torch.Tensor):
                raise AxcError(
                    f"{path} holds a non-tensor value under key {key!r} ({type(value).__name__}); "
                    "re-export the checkpoint as a plain state dict or as safetensors"
                )
        self._tensors: dict[str, torch.Tensor] = state

    @staticmethod
    def _load(path: Path) -> object:
        import torch

        try:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                # Legacy (pre-zipfile) serialization cannot be memory-mapped.
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            text = str(error)
            unsupported = UNSUPPORTED_GLOBAL.search(text)
            if unsupported:  # the name comes from the file: quoted, so a line break in it stays escaped
                raise AxcError(
                    f"{path} holds non-tensor Python objects (unsupported global {unsupported.group(1)!r}); "
                    "refusing to unpickle it, re-export the checkpoint as safetensors"
                ) from None
            start = text.find("WeightsUnpickler error:")
            lines = text[start:].removeprefix("WeightsUnpickler error:").splitlines() if start >= 0 else [text]
            detail = next((line.strip() for line in lines if line.strip()), "unpickling failed").split(". ")[0]
            raise _corrupt_bin(path, detail) from None
        except Exception as error:  # noqa: BLE001 - any failure to parse user input is reported as one line
            first = next(iter(str(error).strip().splitlines()), "")
            raise _corrupt_bin(path, f"{type(error).__name__}: {first}") from None

    def keys(self) -> list[str]:
        return list(self._tensors)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._tensors[key].shape)

    def dtype(self, key: str) -> np.dtype:
        return _numpy_dtype(_numpy_of_torch(), self._tensors[key].dtype, key, self.path)

    def get(self, key: str) -> np.ndarray:
        self.dtype(key)
        return to_numpy(self._tensors[key])

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        return self.get(key)[start:stop]

    def close(self) -> None:
        self._tensors = {}


def _open_file(path: Path) -> _WeightsFile:
    if not path.is_file():
        raise AxcError(f"weights file {path} does not exist; check the path")
    if path.suffix == ".safetensors":
        return _SafetensorsFile(path)
    if path.suffix in (".bin", ".pt", ".pth"):
        return _TorchFile(path)
    raise AxcError(f"{path} is not a weights file; pass a .safetensors or .bin file or a model directory")


class Checkpoint:
    """Read-only, lazy access to a checkpoint's tensors by Hugging Face name."""

    def __init__(self, path: Path, files: list[_WeightsFile], owner: dict[str, _WeightsFile]) -> None:
        self.path = path
        self._files = files
        self._owner = owner

    @classmethod
    def open(cls, path: str | Path) -> Checkpoint:
        """Open a model directory, a `.safetensors`/`.bin` file or a `*.index.json` (headers only)."""
        path = Path(path)
        if path.is_dir():
            found = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
            if found is None:
                loose = sorted(path.glob("*.safetensors"))
                if len(loose) != 1:
                    raise AxcError(
                        f"no weights file in {path} (looked for {', '.join(WEIGHT_FILES)}); "
                        "pass a Hugging Face model directory"
                    )
                found = loose[0]
        elif path.is_file():
            found = path
        else:
            raise AxcError(f"{path} does not exist; pass a model directory or a weights file")
        if found.name.endswith(".index.json"):
            return cls._open_index(path, found)
        file = _open_file(found)
        return cls(path, [file], dict.fromkeys(file.keys(), file))

    @classmethod
    def _open_index(cls, path: Path, index: Path) -> Checkpoint:
        weight_map = read_json(index, "checkpoint index").get("weight_map")
        if not isinstance(weight_map, dict):
            raise AxcError(f"checkpoint index {index} has no weight_map object; re-download the checkpoint")
        files: dict[str, _WeightsFile] = {}
        owner: dict[str, _WeightsFile] = {}
        for key, shard in weight_map.items():
            if shard not in files:
                shard_path = index.parent / shard
                if not shard_path.is_file():
                    raise AxcError(
                        f"checkpoint index {index} names shard {shard}, which is missing from {index.parent}; "
                        "re-download the checkpoint"
                    )
                files[shard] = _open_file(shard_path)
            owner[key] = files[shard]
        present = {shard: set(file.keys()) for shard, file in files.items()}
        for key, shard in weight_map.items():
            if key not in present[shard]:
                raise AxcError(
                    f"checkpoint index {index} puts tensor {key} in {shard}, which does not hold it; "
                    "re-download the checkpoint"
                )
        return cls(path, list(files.values()), owner)

    @property
    def files(self) -> list[Path]:
        return [file.path for file in self._files]

    def keys(self) -> list[str]:
        return list(self._owner)

    def __contains__(self, key: object) -> bool:
        return key in self._owner

    def find_key(self, *candidates: str) -> str | None:
        """The first of `candidates` present in the checkpoint."""
        return next((key for key in candidates if key in self._owner), None)

    def _file(self, key: str) -> _WeightsFile:
        if key not in self._owner:
            raise AxcError(f"tensor {key} not found in {self.path}; check the checkpoint and the parameter name")
        return self._owner[key]

    def file(self, key: str) -> Path:
        """The file that holds `key`."""
        return self._file(key).path

    def shape(self, key: str) -> tuple[int, ...]:
        return self._file(key).shape(key)

    def dtype(self, key: str) -> np.dtype:
        return self._file(key).dtype(key)

    def get(self, key: str) -> np.ndarray:
        """One tensor in its stored dtype, as a read-only array (copy to modify)."""
        array = self._file(key).get(key)
        array.flags.writeable = False
        return array

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows `start:stop` of one tensor, reading no more of the file than they need."""
        if key not in self._owner:  # a view's virtual tensor (GPTQ): whole, then sliced
            return self.get(key)[start:stop]
        array = self._file(key).rows(key, start, stop)
        array.flags.writeable = False
        return array

    def close(self) -> None:
        for file in self._files:
            file.close()
        self._files, self._owner = [], {}

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class LazyParam(Protocol):
    """A created parameter computed when read: whole (`materialize`) or a few rows at a time."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def rows(self, start: int, stop: int) -> np.ndarray: ...

    def materialize(self) -> np.ndarray: ...


class ParamStore:
    """Parameter scopes: checkpoints bound by name, plus tensors created by passes.

    A created parameter shadows a bound one with the same scope and key. It is an array or
    a `LazyParam`: `get` computes the latter once and keeps it; `rows` streams any
    parameter a few rows at a time without keeping anything (what emission uses, so a
    weight larger than memory never exists whole).
    """

    def __init__(self) -> None:
        self._bound: dict[str, Checkpoint] = {}
        self._created: dict[str, dict[str, np.ndarray | LazyParam]] = {}

    def bind(self, scope: str, checkpoint: Checkpoint) -> None:
        self._bound[scope] = checkpoint

    def add(self, scope: str, key: str, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.dtype not in _NUMPY_OF_SAFETENSORS.values():
            raise ValueError(f"parameter {scope}::{key} has unsupported dtype {array.dtype}")
        self._created.setdefault(scope, {})[key] = array

    def add_lazy(self, scope: str, key: str, param: LazyParam) -> None:
        if param.dtype not in _NUMPY_OF_SAFETENSORS.values():
            raise ValueError(f"parameter {scope}::{key} has unsupported dtype {param.dtype}")
        self._created.setdefault(scope, {})[key] = param

    def _source(self, scope: str, key: str) -> np.ndarray | LazyParam | Checkpoint:
        created = self._created.get(scope, {})
        if key in created:
            return created[key]
        if scope in self._bound:
            return self._bound[scope]
        raise AxcError(f"parameter {scope}::{key} not found: scope {scope!r} is not bound to a checkpoint")

    def scopes(self) -> list[str]:
        """The scopes bound to checkpoints."""
        return list(self._bound)

    def checkpoint(self, scope: str) -> Checkpoint | None:
        """The checkpoint bound to `scope`, if any."""
        return self._bound.get(scope)

    def has(self, scope: str, key: str) -> bool:
        return key in self._created.get(scope, {}) or (scope in self._bound and key in self._bound[scope])

    def get(self, scope: str, key: str) -> np.ndarray:
        source = self._source(scope, key)
        if isinstance(source, Checkpoint):
            return source.get(key)
        if not isinstance(source, np.ndarray):
            source = self._created[scope][key] = source.materialize()
        return source

    def rows(self, scope: str, key: str, start: int, stop: int) -> np.ndarray:
        """Rows `start:stop` of a parameter (its first axis); nothing is computed beyond them or kept."""
        source = self._source(scope, key)
        if isinstance(source, Checkpoint):
            return source.rows(key, start, stop)
        return source[start:stop] if isinstance(source, np.ndarray) else source.rows(start, stop)

    def shape(self, scope: str, key: str) -> tuple[int, ...]:
        source = self._source(scope, key)
        return source.shape(key) if isinstance(source, Checkpoint) else tuple(source.shape)

    def dtype(self, scope: str, key: str) -> np.dtype:
        source = self._source(scope, key)
        return source.dtype(key) if isinstance(source, Checkpoint) else np.dtype(source.dtype)

    def created(self) -> dict[str, dict[str, np.ndarray]]:
        """Every created parameter as an array (lazy ones computed now)."""
        return {scope: {key: self.get(scope, key) for key in params} for scope, params in self._created.items()}

    def save(self, path: str | Path, scope: str | None = None) -> Path:
        """Write one scope's created parameters as safetensors, atomically.

        `scope=None` means the only scope that has created parameters.
        """
        if scope is None:
            if len(self._created) > 1:
                raise ValueError(f"several scopes have created parameters ({', '.join(self._created)}); name one")
            scope = next(iter(self._created), "")
        arrays = {key: np.asarray(a, order="C") for key, a in self.created().get(scope, {}).items()}
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            safetensors.numpy.save_file(arrays, tmp, metadata={"format": "pt", SCOPE_METADATA_KEY: scope})
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def load_created(self, path: str | Path, scope: str) -> None:
        """Bind a file written by `save` back as `scope`."""
        self.bind(scope, Checkpoint.open(path))

    def close(self) -> None:
        for checkpoint in self._bound.values():
            checkpoint.close()
        self._bound.clear()
