"""Weight storage formats of the `quant` dialect, and vectorised numpy (de)quantization.

A `WeightSpec` is the Python view of a `!quant.w<...>` type. Storage, row-major `[out, in]`
with `in` the input (reduction) dimension:

| kind | data | scales | zeros (asym only) |
| --- | --- | --- | --- |
| s8 | int8 `[out, in]` | `[out]` or `[out, groups]` | int8, same shape as scales |
| s4 | uint8 `[out, ceil(in/2)]`, two codes per byte, low nibble = even `in` index; sym: signed two's complement (-8..7), asym: unsigned (0..15) | as s8 | uint8 (0..15) |
| fp8_e4m3, fp8_e5m2 | `ml_dtypes.float8_e4m3fn` / `float8_e5m2` `[out, in]` | `[out]` | — |
| bf16, fp16, fp32 | plain `[out, in]` | — | — |

`groups = ceil(in / group)`; scales are stored as `scale_type` (f16, bf16 or f32). The
logical weight is `W[n, k] = scales[n, k // group] * (code[n, k] - zeros[n, k // group])`.
With f16/bf16 scales that product is exact in fp32, so dequantized weights are exact.
An optional `perm` (int32 `[in]`) says that stored column `j` holds input `perm[j]`
(GPTQ act-order, regrouped so that every group is contiguous).

Quantization rounds to nearest even everywhere (`np.rint`, `ml_dtypes` casts); scales are
rounded to their storage type first and the codes computed against the stored scale.
`quantize-weights` stores integer scales as f16 (11 bits keep 8-bit codes within half a
step of the absmax) and fp8 scales as bf16 (range: absmax / 448 is often below f16's
normal range).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import ml_dtypes
import numpy as np

from axc.errors import AxcError

if TYPE_CHECKING:
    from axc.params import ParamStore

INTEGER_KINDS = ("s8", "s4")
FP8_KINDS = ("fp8_e4m3", "fp8_e5m2")
PLAIN_KINDS = ("bf16", "fp16", "fp32")
KINDS = (*INTEGER_KINDS, *FP8_KINDS, *PLAIN_KINDS)
SCALE_TYPES = ("f16", "bf16", "f32")
BITS = {"s8": 8, "s4": 4, "fp8_e4m3": 8, "fp8_e5m2": 8, "bf16": 16, "fp16": 16, "fp32": 32}

NUMPY_TYPES: dict[str, np.dtype] = {
    name: np.dtype(t)
    for name, t in (
        ("fp8_e4m3", ml_dtypes.float8_e4m3fn),
        ("fp8_e5m2", ml_dtypes.float8_e5m2),
        ("bf16", ml_dtypes.bfloat16),
        ("fp16", np.float16),
        ("fp32", np.float32),
        ("f16", np.float16),
        ("f32", np.float32),
    )
}
# (min, max) code of each integer format.
CODE_RANGE = {("s8", False): (-128, 127), ("s8", True): (-128, 127), ("s4", False): (-8, 7), ("s4", True): (0, 15)}
CHUNK_ELEMENTS = 1 << 18
"""Rows are quantized in chunks of about this many elements, so temporaries stay in cache."""


@dataclass(frozen=True)
class WeightSpec:
    """How one `[out, in]` weight is stored; `group = 0` means one scale per output channel."""

    kind: str
    out_features: int
    in_features: int
    group: int = 0
    asym: bool = False
    scale_type: str = "f16"

    @property
    def quantized(self) -> bool:
        return self.kind not in PLAIN_KINDS

    @property
    def group_size(self) -> int:
        """Inputs per scale (the whole row when per channel)."""
        return self.group or self.in_features

    @property
    def groups(self) -> int:
        return math.ceil(self.in_features / self.group_size)

    @property
    def data_shape(self) -> tuple[int, int]:
        columns = math.ceil(self.in_features / 2) if self.kind == "s4" else self.in_features
        return (self.out_features, columns)

    @property
    def data_dtype(self) -> np.dtype:
        if self.kind == "s8":
            return np.dtype(np.int8)
        if self.kind == "s4":
            return np.dtype(np.uint8)
        return NUMPY_TYPES[self.kind]

    @property
    def scales_shape(self) -> tuple[int, ...]:
        return (self.out_features,) if self.group == 0 else (self.out_features, self.groups)

    @property
    def zeros_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.kind == "s4" else np.int8)

    def problem(self) -> str | None:
        """What is wrong with this spec, or None (the type verifier's message)."""
        if self.kind not in KINDS:
            return f"unknown weight kind '{self.kind}' (known: {', '.join(KINDS)})"
        if self.out_features <= 0 or self.in_features <= 0:
            return f"shape {self.out_features}x{self.in_features} must be positive"
        if not self.quantized:
            if self.group or self.asym or self.scale_type:
                return f"{self.kind} weights are stored plain: no group, zero point or scale"
            return None
        if self.scale_type not in SCALE_TYPES:
            return f"{self.kind} weights need a scale type ({', '.join(SCALE_TYPES)})"
        if self.group < 0:
            return f"group size {self.group} must be positive"
        if self.kind in FP8_KINDS and (self.group or self.asym):
            return f"{self.kind} weights have symmetric per-channel scales only"
        return None


@dataclass
class QuantizedWeight:
    """The stored arrays of one weight."""

    spec: WeightSpec
    data: np.ndarray
    scales: np.ndarray | None = None
    zeros: np.ndarray | None = None
    perm: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The non-empty arrays by role: data, scales, zeros, perm."""
        named = {"data": self.data, "scales": self.scales, "zeros": self.zeros, "perm": self.perm}
        return {role: array for role, array in named.items() if array is not None}

    def save(self, store: ParamStore, scope: str, prefix: str) -> dict[str, str]:
        """Add the arrays to `store` as `<prefix>.<kind>[.scales|.zeros|.perm]`; their keys by role."""
        keys: dict[str, str] = {}
        for role, array in self.arrays().items():
            keys[role] = f"{prefix}.{self.spec.kind}" + ("" if role == "data" else f".{role}")
            store.add(scope, keys[role], array)
        return keys

    def check(self, where: str) -> None:
        """Raise AxcError when an array does not have the shape/dtype the spec says."""
        spec = self.spec
        expected: dict[str, tuple[tuple[int, ...], np.dtype] | None] = {
            "data": (spec.data_shape, spec.data_dtype),
            "scales": (spec.scales_shape, NUMPY_TYPES[spec.scale_type]) if spec.quantized else None,
            "zeros": (spec.scales_shape, spec.zeros_dtype) if spec.asym else None,
            "perm": ((spec.in_features,), np.dtype(np.int32)) if self.perm is not None else None,
        }
        for role, want in expected.items():
            array = getattr(self, role)
            if want is None or array is None:
                if (want is None) != (array is None):
                    state = "missing" if array is None else "unexpected"
                    raise AxcError(f"{where}: {role} is {state} for a {spec.kind} weight; re-run the pass")
                continue
            shape, dtype = want
            if tuple(array.shape) != shape or array.dtype != dtype:
                raise AxcError(
                    f"{where}: {role} is {array.dtype}{list(array.shape)}, the type needs {dtype}{list(shape)}; "
                    "the parameter file does not match the IR, re-run the pass"
                )


def pack_s4(codes: np.ndarray) -> np.ndarray:
    """`[out, in]` 4-bit codes (int8 -8..7 or uint8 0..15) → uint8 `[out, ceil(in/2)]`."""
    nibbles = codes.view(np.uint8) & np.uint8(0x0F)
    if nibbles.shape[1] % 2:
        nibbles = np.pad(nibbles, ((0, 0), (0, 1)))
    return nibbles[:, 0::2] | (nibbles[:, 1::2] << np.uint8(4))


def unpack_s4(packed: np.ndarray, in_features: int, signed: bool) -> np.ndarray:
    """Inverse of `pack_s4`: int8 codes when `signed`, else uint8."""
    codes = np.empty((packed.shape[0], packed.shape[1] * 2), np.uint8)
    codes[:, 0::2] = packed & np.uint8(0x0F)
    codes[:, 1::2] = packed >> np.uint8(4)
    codes = codes[:, :in_features]
    if signed:
        return ((codes ^ np.uint8(8)).astype(np.int8) - np.int8(8)).astype(np.int8)
    return codes


def _grouped(w: np.ndarray, group: int) -> np.ndarray:
    """`[rows, in]` → `[rows, groups, group]`, padding a partial last group with its edge value."""
    rows, columns = w.shape
    groups = math.ceil(columns / group)
    if groups * group != columns:
        w = np.pad(w, ((0, 0), (0, groups * group - columns)), mode="edge")
    return w.reshape(rows, groups, group)


def _stored_scale(scale: np.ndarray, scale_type: str) -> np.ndarray:
    """Round scales to their storage type; an all-zero group gets scale 1 (its codes are 0)."""
    scale = np.where(scale > 0, scale, np.float32(1)).astype(NUMPY_TYPES[scale_type])
    return np.where(scale.astype(np.float32) > 0, scale, np.ones_like(scale))


def _quantize_rows(w: np.ndarray, spec: WeightSpec) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Codes, scales and zeros of a chunk of rows (fp32 in, storage dtypes out)."""
    if not spec.quantized:
        return w.astype(spec.data_dtype), None, None
    g = _grouped(w, spec.group_size)
    lo, hi = g.min(axis=2), g.max(axis=2)
    if spec.kind in FP8_KINDS:
        top = float(ml_dtypes.finfo(spec.data_dtype).max)
        scales = _stored_scale(np.maximum(hi, -lo) / np.float32(top), spec.scale_type)
        scaled = g / scales.astype(np.float32)[:, :, None]
        np.clip(scaled, -top, top, out=scaled)
        codes, zeros = scaled.astype(spec.data_dtype), None
    else:
        qmin, qmax = CODE_RANGE[(spec.kind, spec.asym)]
        if spec.asym:
            lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
            scales = _stored_scale((hi - lo) / np.float32(qmax - qmin), spec.scale_type)
            zeros = np.clip(qmin - np.rint(lo / scales.astype(np.float32)), qmin, qmax)
        else:
            scales = _stored_scale(np.maximum(hi, -lo) / np.float32(qmax), spec.scale_type)
            zeros = None
        scaled = g / scales.astype(np.float32)[:, :, None]
        np.rint(scaled, out=scaled)
        if zeros is not None:
            scaled += zeros[:, :, None]
        np.clip(scaled, qmin, qmax, out=scaled)
        codes = scaled.astype(np.int8 if spec.kind == "s8" or not spec.asym else np.uint8)
        zeros = zeros.astype(spec.zeros_dtype) if zeros is not None else None
    codes = codes.reshape(codes.shape[0], -1)[:, : spec.in_features]
    if spec.kind == "s4":
        codes = pack_s4(codes)
    if spec.group == 0:
        scales = scales[:, 0]
        zeros = zeros[:, 0] if zeros is not None else None
    return codes, scales, zeros


def quantize(weight: np.ndarray, spec: WeightSpec) -> QuantizedWeight:
    """Quantize a `[out, in]` weight (any float dtype) to `spec`, a chunk of rows at a time."""
    assert weight.shape == (spec.out_features, spec.in_features), (weight.shape, spec)
    data = np.empty(spec.data_shape, spec.data_dtype)
    scales = np.empty(spec.scales_shape, NUMPY_TYPES[spec.scale_type]) if spec.quantized else None
    zeros = np.empty(spec.scales_shape, spec.zeros_dtype) if spec.asym else None
    step = max(1, CHUNK_ELEMENTS // spec.in_features)
    for start in range(0, spec.out_features, step):
        rows = slice(start, start + step)
        codes, chunk_scales, chunk_zeros = _quantize_rows(np.asarray(weight[rows], np.float32), spec)
        data[rows] = codes
        if scales is not None:
            scales[rows] = chunk_scales
        if zeros is not None:
            zeros[rows] = chunk_zeros
    return QuantizedWeight(spec, data, scales, zeros)


Rows = Callable[[int, int], np.ndarray]
"""Rows `start:stop` of a `[out, in]` weight (e.g. `ParamStore.rows` of one parameter)."""


@dataclass
class LazyQuantized:
    """A weight quantized when it is read, from the rows of its source that are read.

    Rows quantize independently (a scale covers part of one row), so any rows of the data,
    scales or zeros equal those rows of `quantize(whole, spec)`. Scales and zeros (small)
    are kept as the data's rows are computed, so streaming the data and then the scales
    reads the source once.
    """

    spec: WeightSpec
    source: Rows
    _small: dict[str, np.ndarray] = field(default_factory=dict)
    _filled: np.ndarray | None = None

    def roles(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Shape and dtype of each stored array, by role."""
        spec = self.spec
        roles: dict[str, tuple[tuple[int, ...], np.dtype]] = {"data": (spec.data_shape, spec.data_dtype)}
        if spec.quantized:
            roles["scales"] = (spec.scales_shape, NUMPY_TYPES[spec.scale_type])
        if spec.asym:
            roles["zeros"] = (spec.scales_shape, spec.zeros_dtype)
        return roles

    def rows(self, role: str, start: int, stop: int) -> np.ndarray:
        start, stop, _ = slice(start, stop).indices(self.spec.out_features)
        stop = max(start, stop)
        if role != "data" and self._filled is not None and self._filled[start:stop].all():
            return self._small[role][start:stop].copy()
        weight = quantize(self.source(start, stop), replace(self.spec, out_features=stop - start))
        arrays = weight.arrays()
        if len(arrays) > 1:
            if self._filled is None:
                self._filled = np.zeros(self.spec.out_features, bool)
                self._small = {r: np.empty(shape, dtype) for r, (shape, dtype) in self.roles().items() if r != "data"}
            for r, small in self._small.items():
                small[start:stop] = arrays[r]
            self._filled[start:stop] = True
        return arrays[role]

    def save(self, store: ParamStore, scope: str, prefix: str) -> dict[str, str]:
        """Add the arrays to `store` as lazy parameters named as `QuantizedWeight.save` names them."""
        keys: dict[str, str] = {}
        for role in self.roles():
            keys[role] = f"{prefix}.{self.spec.kind}" + ("" if role == "data" else f".{role}")
            store.add_lazy(scope, keys[role], LazyRole(self, role))
        return keys


@dataclass(frozen=True)
class LazyRole:
    """One stored array of a `LazyQuantized` weight (a `LazyParam`)."""

    weight: LazyQuantized
    role: str

    @property
    def shape(self) -> tuple[int, ...]:
        return self.weight.roles()[self.role][0]

    @property
    def dtype(self) -> np.dtype:
        return self.weight.roles()[self.role][1]

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.weight.rows(self.role, start, stop)

    def materialize(self) -> np.ndarray:
        return self.rows(0, self.weight.spec.out_features)


def codes_of(weight: QuantizedWeight) -> np.ndarray:
    """The unpacked codes `[out, in]` in stored column order (float32)."""
    spec = weight.spec
    if spec.kind == "s4":
        return unpack_s4(weight.data, spec.in_features, signed=not spec.asym).astype(np.float32)
    return weight.data.astype(np.float32)


def dequantize(weight: QuantizedWeight) -> np.ndarray:
    """The logical fp32 weight `[out, in]` (input columns in their original order)."""
    spec = weight.spec
    w = codes_of(weight)
    if spec.quantized:
        assert weight.scales is not None
        scales = weight.scales.astype(np.float32).reshape(spec.out_features, -1)
        expand = np.minimum(np.arange(spec.in_features) // spec.group_size, scales.shape[1] - 1)
        if weight.zeros is not None:
            w -= weight.zeros.astype(np.float32).reshape(spec.out_features, -1)[:, expand]
        w *= scales[:, expand]
    if weight.perm is not None:
        logical = np.empty_like(w)
        logical[:, weight.perm] = w
        w = logical
    return w
