"""GPTQ checkpoints (AutoGPTQ / GPTQModel layout): unpacking, checks, lossless repacking.

Design: the `tfm` level needs every linear's `<prefix>.weight`. A GPTQ checkpoint has
`qweight`/`qzeros`/`scales`/`g_idx` instead, so `open_checkpoint` returns a
`GptqCheckpoint` whose `<prefix>.weight` is a *virtual* key: an fp32 `[out, in]` tensor
made by exact dequantization, `W[n, k] = scales[g_idx[k], n] * (q[k, n] - z[g_idx[k], n])`
(fp16 scale × integer of at most 9 bits is exact in fp32). So the IR is the same as for a
plain checkpoint and the tfm reference interpreter runs unchanged:

```mlir
%w = axc.param <"model"::"model.layers.0.mlp.up_proj.weight"> : tensor<512x256xf32>
```

`import-gptq` then swaps those linears for `quant.linear` over the integer codes,
repacked into the `quant` storage (`GptqCheckpoint.stored`) without re-quantizing.

Zero points: format `gptq` (v1) stores `zero - 1`; the zero is `(stored + 1) mod 2**bits`,
as GPTQModel's v1→v2 conversion reads it. `gptq_v2` stores the zero as is. Act-order
(`desc_act`) checkpoints keep `qweight` rows in input order with a non-monotonic `g_idx`;
`stored` sorts the input columns by group (stable) and records the permutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from axc.errors import AxcError
from axc.jsonio import read_json
from axc.params import Checkpoint
from axc.quantization import QuantizedWeight, WeightSpec, pack_s4

QUANT_METHODS = ("gptq",)
GPTQ_BITS = (2, 3, 4, 8)
GPTQ_FORMATS = ("gptq", "gptq_v2")
SUFFIXES = ("qweight", "qzeros", "scales", "g_idx")
STORAGE_BITS = {8: "s8", 4: "s4"}
"""GPTQ bit widths that `import-gptq` repacks, and the `quant` kind each becomes."""


@dataclass(frozen=True)
class QuantConfig:
    """Pre-quantized checkpoint settings (`quantization_config` / `quantize_config.json`)."""

    method: str
    bits: int
    group_size: int
    desc_act: bool
    sym: bool
    checkpoint_format: str


def read_quant_config(raw: dict[str, Any], model_dir: Path, config_path: Path) -> QuantConfig | None:
    """The `quantization_config` of a parsed `config.json` (else `quantize_config.json`), or None."""
    where = config_path
    data = raw.get("quantization_config")
    if data is None and (model_dir / "quantize_config.json").is_file():
        where = model_dir / "quantize_config.json"
        data = read_json(where, "quantization config")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise AxcError(f"quantization_config in {where} must be an object; fix the config")
    method = data.get("quant_method", data.get("method", "gptq"))
    if method not in QUANT_METHODS:
        raise AxcError(
            f"unsupported quantization method {method!r} in {where} (not supported yet); "
            f"supported: {', '.join(QUANT_METHODS)}"
        )
    bits = data.get("bits")
    if bits not in GPTQ_BITS:
        raise AxcError(f"GPTQ bits={bits!r} in {where} is not supported; use one of {GPTQ_BITS}")
    group_size = data.get("group_size", -1)
    if not isinstance(group_size, int) or isinstance(group_size, bool) or (group_size <= 0 and group_size != -1):
        raise AxcError(f"GPTQ group_size={group_size!r} in {where} must be a positive integer or -1")
    fmt = data.get("checkpoint_format") or data.get("format") or "gptq"
    if fmt not in GPTQ_FORMATS:
        raise AxcError(f"GPTQ checkpoint format {fmt!r} in {where} is not supported; use one of {GPTQ_FORMATS}")
    pack_dtype = data.get("pack_dtype", "int32")
    if pack_dtype != "int32":
        raise AxcError(f"GPTQ pack_dtype={pack_dtype!r} in {where} is not supported; re-quantize with int32")
    return QuantConfig(
        method=method,
        bits=bits,
        group_size=group_size,
        desc_act=bool(data.get("desc_act", False)),
        sym=bool(data.get("sym", True)),
        checkpoint_format=fmt,
    )


def gptq_shapes(quant: QuantConfig, out_features: int, in_features: int) -> dict[str, tuple[int, ...]]:
    """The shapes of a GPTQ linear's tensors by suffix (qweight, qzeros, scales, g_idx)."""
    group = in_features if quant.group_size == -1 else quant.group_size
    groups = math.ceil(in_features / group)
    return {
        "qweight": (in_features * quant.bits // 32, out_features),
        "qzeros": (groups, out_features * quant.bits // 32),
        "scales": (groups, out_features),
        "g_idx": (in_features,),
    }


@dataclass(frozen=True)
class GptqTensors:
    """One GPTQ linear, unpacked: `q [in, out]`, `zeros`/`scales [groups, out]`, `g_idx [in]`."""

    prefix: str
    bits: int
    group_size: int
    q: np.ndarray
    zeros: np.ndarray
    scales: np.ndarray
    g_idx: np.ndarray

    @property
    def in_features(self) -> int:
        return self.q.shape[0]

    @property
    def out_features(self) -> int:
        return self.q.shape[1]

    def dequantize(self) -> np.ndarray:
        """The logical weight `[out, in]` in fp32 (exact)."""
        codes = self.q.astype(np.float32) - self.zeros[self.g_idx].astype(np.float32)
        return np.ascontiguousarray((codes * self.scales[self.g_idx].astype(np.float32)).T)


def unpack_along_rows(packed: np.ndarray, bits: int) -> np.ndarray:
    """int32 `[R, N]` holding `32 / bits` values per word (LSB first) → uint8 `[R * 32/bits, N]`."""
    shifts = np.arange(0, 32, bits, dtype=np.uint32)
    values = (packed.view(np.uint32)[:, None, :] >> shifts[None, :, None]) & np.uint32((1 << bits) - 1)
    return values.astype(np.uint8).reshape(-1, packed.shape[1])


def unpack_along_columns(packed: np.ndarray, bits: int) -> np.ndarray:
    """int32 `[G, C]` holding `32 / bits` values per word (LSB first) → uint8 `[G, C * 32/bits]`."""
    shifts = np.arange(0, 32, bits, dtype=np.uint32)
    values = (packed.view(np.uint32)[:, :, None] >> shifts[None, None, :]) & np.uint32((1 << bits) - 1)
    return values.astype(np.uint8).reshape(packed.shape[0], -1)


class GptqCheckpoint(Checkpoint):
    """A GPTQ checkpoint that also answers `<prefix>.weight` with the dequantized weight."""

    quant: QuantConfig

    @classmethod
    def wrap(cls, checkpoint: Checkpoint, quant: QuantConfig) -> GptqCheckpoint:
        wrapped = cls(checkpoint.path, checkpoint._files, checkpoint._owner)  # noqa: SLF001 - same object, new view
        wrapped.quant = quant
        return wrapped

    def prefixes(self) -> list[str]:
        """The GPTQ-quantized linears, by module prefix."""
        return [key.removesuffix(".qweight") for key in super().keys() if key.endswith(".qweight")]

    def quantized_prefix(self, key: str) -> str | None:
        """The linear whose virtual weight `key` is, or None."""
        prefix = key.removesuffix(".weight")
        if prefix == key or key in self._owner or f"{prefix}.qweight" not in self._owner:
            return None
        return prefix

    def keys(self) -> list[str]:
        return super().keys() + [f"{prefix}.weight" for prefix in self.prefixes()]

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (isinstance(key, str) and self.quantized_prefix(key) is not None)

    def file(self, key: str) -> Path:
        prefix = self.quantized_prefix(key)
        return super().file(f"{prefix}.qweight" if prefix else key)

    def shape(self, key: str) -> tuple[int, ...]:
        prefix = self.quantized_prefix(key)
        if prefix is None:
            return super().shape(key)
        rows, out_features = super().shape(f"{prefix}.qweight")
        return (out_features, rows * 32 // self.quant.bits)

    def dtype(self, key: str) -> np.dtype:
        return np.dtype(np.float32) if self.quantized_prefix(key) else super().dtype(key)

    def get(self, key: str) -> np.ndarray:
        prefix = self.quantized_prefix(key)
        if prefix is None:
            return super().get(key)
        weight = self.unpack(prefix).dequantize()
        weight.flags.writeable = False
        return weight

    def group_indices(self, prefix: str) -> np.ndarray:
        """The checked `g_idx` of one linear: shapes agree with the config, values are groups."""
        quant = self.quant
        if 32 % quant.bits:
            raise AxcError(
                f"GPTQ bits={quant.bits} in {self.path} is not supported yet (its packing crosses words); "
                "use a 2-, 4- or 8-bit checkpoint"
            )
        rows, out_features = super().shape(f"{prefix}.qweight")
        expected = gptq_shapes(quant, out_features, rows * 32 // quant.bits)
        for suffix in SUFFIXES:
            shape = super().shape(f"{prefix}.{suffix}")
            if shape != expected[suffix]:
                raise AxcError(
                    f"tensor {prefix}.{suffix} has shape {list(shape)} in {super().file(f'{prefix}.{suffix}')} "
                    f"but {prefix}.qweight {[rows, out_features]} with bits={quant.bits}, "
                    f"group_size={quant.group_size} implies {list(expected[suffix])}; "
                    "the checkpoint does not match its quantization_config"
                )
        groups = expected["scales"][0]
        g_idx = np.asarray(super().get(f"{prefix}.g_idx"), np.int64)
        bad = (g_idx < 0) | (g_idx >= groups)
        if bad.any():
            k = int(np.argmax(bad))
            raise AxcError(
                f"tensor {prefix}.g_idx in {super().file(f'{prefix}.g_idx')} has value {int(g_idx[k])} at input {k}, "
                f"outside the {groups} groups [0, {groups - 1}]; the checkpoint is corrupt, re-export it"
            )
        return g_idx

    def check(self) -> None:
        """Check every quantized linear's shapes and group indices (small reads only)."""
        for prefix in self.prefixes():
            self.group_indices(prefix)

    def unpack(self, prefix: str) -> GptqTensors:
        """Read and unpack one linear (checked first)."""
        quant, g_idx = self.quant, self.group_indices(prefix)
        zeros = unpack_along_columns(np.asarray(super().get(f"{prefix}.qzeros")), quant.bits)
        if quant.checkpoint_format == "gptq":
            zeros = (zeros + np.uint8(1)) & np.uint8((1 << quant.bits) - 1)
        return GptqTensors(
            prefix=prefix,
            bits=quant.bits,
            group_size=len(g_idx) if quant.group_size == -1 else quant.group_size,
            q=unpack_along_rows(np.asarray(super().get(f"{prefix}.qweight")), quant.bits),
            zeros=zeros,
            scales=np.asarray(super().get(f"{prefix}.scales")),
            g_idx=g_idx,
        )

    def stored(self, prefix: str) -> QuantizedWeight:
        """The linear in `quant` storage: the same integers, zeros and fp16 scales (lossless)."""
        t = self.unpack(prefix)
        kind = STORAGE_BITS.get(t.bits)
        if kind is None:
            raise AxcError(
                f"GPTQ bits={t.bits} in {self.path} is not supported yet by import-gptq; "
                f"supported: {', '.join(map(str, STORAGE_BITS))}"
            )
        in_features, groups = t.in_features, t.scales.shape[0]
        order = np.argsort(t.g_idx, kind="stable")
        if not np.array_equal(t.g_idx[order], np.minimum(np.arange(in_features) // t.group_size, groups - 1)):
            raise AxcError(
                f"tensor {prefix}.g_idx in {self.path} does not put {t.group_size} inputs in each group; "
                "uneven act-order groups are not supported yet"
            )
        perm = None if np.array_equal(order, np.arange(in_features)) else order.astype(np.int32)
        codes = t.q.T if perm is None else t.q.T[:, perm]
        middle = 1 << (t.bits - 1)
        asym = bool(np.any(t.zeros != middle))
        zeros = t.zeros.T
        if kind == "s8":
            data = (codes.astype(np.int16) - middle).astype(np.int8)
            zeros = (zeros.astype(np.int16) - middle).astype(np.int8)
        else:
            data = pack_s4(codes if asym else (codes.astype(np.int8) - np.int8(middle)))
        per_channel = groups == 1
        spec = WeightSpec(
            kind=kind,
            out_features=t.out_features,
            in_features=in_features,
            group=0 if per_channel else t.group_size,
            asym=asym,
            scale_type="f16",
        )
        scales = np.ascontiguousarray(t.scales.T.astype(np.float16))
        return QuantizedWeight(
            spec,
            np.ascontiguousarray(data),
            scales[:, 0] if per_channel else scales,
            (np.ascontiguousarray(zeros[:, 0] if per_channel else zeros) if asym else None),
            perm,
        )
