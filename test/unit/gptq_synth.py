"""Synthetic GPTQ checkpoints for tests: any bits / sym / format / act-order, packed here
independently of `axc.checkpoints.gptq`, from the real qwen2 fixture's config and norms."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.numpy

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gptq"
BASE = FIXTURES / "qwen2-tiny-gptq-int4"
GROUP = 128


def pack_rows(values: np.ndarray, bits: int) -> np.ndarray:
    """uint `[K, N]` → int32 `[K * bits / 32, N]`: word r holds rows r*pack .. r*pack+pack-1, LSB first."""
    pack = 32 // bits
    words = np.zeros((values.shape[0] // pack, values.shape[1]), np.uint32)
    for j in range(pack):
        words |= values[j::pack].astype(np.uint32) << np.uint32(bits * j)
    return words.view(np.int32)


def pack_columns(values: np.ndarray, bits: int) -> np.ndarray:
    """uint `[G, N]` → int32 `[G, N * bits / 32]`, LSB first along N."""
    pack = 32 // bits
    words = np.zeros((values.shape[0], values.shape[1] // pack), np.uint32)
    for j in range(pack):
        words |= values[:, j::pack].astype(np.uint32) << np.uint32(bits * j)
    return words.view(np.int32)


@dataclass
class SynthLinear:
    """The integers and scales a synthetic linear was made from (`W = s[g] * (q - z[g])`)."""

    q: np.ndarray  # [in, out]
    z: np.ndarray  # [groups, out], the true zero points
    s: np.ndarray  # [groups, out] fp16
    g_idx: np.ndarray  # [in]

    def weight(self) -> np.ndarray:
        """The logical `[out, in]` weight, in fp32."""
        w = (self.q.astype(np.float32) - self.z[self.g_idx].astype(np.float32)) * self.s[self.g_idx].astype(np.float32)
        return w.T


def make_linear(rng: np.random.Generator, in_features: int, out_features: int, bits: int, sym: bool,
                desc_act: bool) -> SynthLinear:
    top = (1 << bits) - 1
    groups = math.ceil(in_features / GROUP)
    q = rng.integers(0, top + 1, size=(in_features, out_features), dtype=np.int64)
    if sym:
        z = np.full((groups, out_features), 1 << (bits - 1))
    else:
        z = rng.integers(0, top + 1, size=(groups, out_features))
        z[0, :4] = (0, top, 1, top - 1)  # the wrap-around cases of the v1 offset
    s = (rng.random((groups, out_features)) * 0.01 + 1e-4).astype(np.float16)
    g_idx = np.arange(in_features) // GROUP
    if desc_act:
        order = rng.permutation(in_features)
        g_idx = np.empty(in_features, np.int64)
        g_idx[order] = np.arange(in_features) // GROUP
    return SynthLinear(q, z, s, g_idx)


def write_gptq(out: Path, bits: int = 4, sym: bool = True, fmt: str = "gptq", desc_act: bool = False,
               seed: int = 0) -> dict[str, SynthLinear]:
    """A qwen2 GPTQ checkpoint in `out` with random integers; its linears by prefix."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((BASE / "config.json").read_text())
    config["quantization_config"].update(bits=bits, sym=sym, desc_act=desc_act, checkpoint_format=fmt, format=fmt)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tensors = safetensors.numpy.load_file(BASE / "model.safetensors")
    linears: dict[str, SynthLinear] = {}
    for key in [k for k in tensors if k.endswith(".qweight")]:
        prefix = key.removesuffix(".qweight")
        in_features, out_features = tensors[key].shape[0] * 8, tensors[key].shape[1]
        linear = linears[prefix] = make_linear(rng, in_features, out_features, bits, sym, desc_act)
        stored_zeros = (linear.z - 1) & ((1 << bits) - 1) if fmt == "gptq" else linear.z
        tensors[f"{prefix}.qweight"] = pack_rows(linear.q, bits)
        tensors[f"{prefix}.qzeros"] = pack_columns(stored_zeros, bits)
        tensors[f"{prefix}.scales"] = linear.s
        tensors[f"{prefix}.g_idx"] = linear.g_idx.astype(np.int32)
    safetensors.numpy.save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return linears


def copy_fixture(name: str, out: Path, replace: dict[str, np.ndarray] | None = None,
                 config: dict | None = None) -> Path:
    """A copy of a GPTQ fixture with some tensors (or quantization_config keys) replaced."""
    shutil.copytree(FIXTURES / name, out)
    if replace:
        tensors = safetensors.numpy.load_file(out / "model.safetensors")
        tensors.update(replace)
        safetensors.numpy.save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    if config:
        data = json.loads((out / "config.json").read_text())
        data["quantization_config"].update(config)
        (out / "config.json").write_text(json.dumps(data))
    return out
