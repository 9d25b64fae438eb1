"""Check a checkpoint's tensor names and shapes against its config and its family's
tensor table (headers only)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from axc.errors import AxcError
from axc.checkpoints.gptq import gptq_shapes
from axc.frontend.model_config import ModelConfig
from axc.frontend.families import get_family
from axc.frontend.families.tensors import EMBED, FINAL_NORM, LM_HEAD, Tensor
from axc.params import Checkpoint

GPTQ_TENSORS = ("qweight", "qzeros", "scales", "g_idx")
GPTQ_DTYPES = {"qweight": ("int32",), "qzeros": ("int32",), "scales": ("float16", "float32", "bfloat16"), "g_idx": ("int32", "int64")}
FLOAT_DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class ExpectedTensor:
    """One tensor the config implies, with the config fields that decide it (for messages)."""

    key: str
    shape: tuple[int, ...]
    because: tuple[str, ...]


def _linear(
    config: ModelConfig, prefix: str, out_features: int, in_features: int, bias: bool, because: tuple[str, ...]
) -> list[ExpectedTensor]:
    quant = config.quant
    if quant is None or quant.method != "gptq":
        tensors = [ExpectedTensor(f"{prefix}.weight", (out_features, in_features), because)]
    else:
        because = (*because, "quant_bits", "quant_group_size")
        tensors = [
            ExpectedTensor(f"{prefix}.{suffix}", shape, because)
            for suffix, shape in gptq_shapes(quant, out_features, in_features).items()
        ]
    if bias:
        tensors.append(ExpectedTensor(f"{prefix}.bias", (out_features,), because))
    return tensors


def global_tensors(config: ModelConfig) -> dict[str, Tensor]:
    """The tensors outside the decoder layers, by checkpoint key."""
    table = (
        Tensor(EMBED, lambda c: (c.vocab_size, c.hidden_size), ("vocab_size", "hidden_size")),
        Tensor(FINAL_NORM, lambda c: (c.hidden_size,), ("hidden_size",)),
        Tensor(LM_HEAD, lambda c: (c.vocab_size, c.hidden_size), ("vocab_size", "hidden_size"), when=lambda c: not c.tie_word_embeddings),
        *get_family(config.model_type).post_tensors,
    )
    return {t.name: t for t in table if t.when(config)}


def expected_layer_tensors(config: ModelConfig, index: int) -> dict[str, Tensor]:
    """Layer `index`'s entries of its family's table that this config has, by checkpoint
    key (a linear's by its module name)."""
    family = get_family(config.model_type)
    return {family.layer_key(index, t.name): t for t in family.layer_tensors if t.when(config)}


def _tensors(config: ModelConfig, key: str, entry: Tensor) -> list[ExpectedTensor]:
    if not entry.linear:
        return [ExpectedTensor(key, entry.shape(config), entry.because)]
    out_features, in_features = entry.shape(config)
    return _linear(config, key, out_features, in_features, entry.bias(config), entry.because)


def _expected(config: ModelConfig) -> Iterator[ExpectedTensor]:
    """In checkpoint order, lazily: a check stops at the first missing layer, whatever
    `num_hidden_layers` says (2**31 layers once hung the import)."""
    globals_ = global_tensors(config)
    yield from _tensors(config, EMBED, globals_[EMBED])
    for i in range(config.num_hidden_layers):
        for key, entry in expected_layer_tensors(config, i).items():
            yield from _tensors(config, key, entry)
    for key, entry in globals_.items():
        if key != EMBED:
            yield from _tensors(config, key, entry)


def expected_tensors(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The Hugging Face tensor names and shapes of a model with this config."""
    return {t.key: t.shape for t in _expected(config)}


def _field(config: ModelConfig, name: str) -> object:
    if name.startswith("quant_") and config.quant is not None:
        return getattr(config.quant, name.removeprefix("quant_"))
    return getattr(config, name)


def _missing_reason(config: ModelConfig, checkpoint: Checkpoint, key: str) -> str:
    prefix, suffix = key.rsplit(".", 1)
    if suffix == "weight" and f"{prefix}.qweight" in checkpoint:
        return "the checkpoint is GPTQ-quantized but no quantization_config or quantize_config.json was found"
    if suffix == "bias":
        return f"attention_bias={config.attention_bias}, mlp_bias={config.mlp_bias}"
    if config.quant is not None and suffix in GPTQ_TENSORS:
        return f"quant_method={config.quant.method}, quant_bits={config.quant.bits}"
    if layer_index(config, key) is not None:
        return f"num_hidden_layers={config.num_hidden_layers}"
    if key == LM_HEAD:
        return "tie_word_embeddings=False"
    return f"model_type={config.model_type}"


def _allowed_dtypes(key: str) -> tuple[str, ...]:
    suffix = key.rsplit(".", 1)[-1]
    return GPTQ_DTYPES.get(suffix, FLOAT_DTYPES)


def layer_index(config: ModelConfig, key: str) -> int | None:
    """The decoder layer a checkpoint key belongs to, if any (under the canonical prefix or,
    for a family whose views rename the layers, the stored one)."""
    family = get_family(config.model_type)
    for prefix in (family.layer_prefix, family.stored_layer_prefix):
        match = re.match(re.escape(prefix).replace(r"\{\}", r"(\d+)"), key) if prefix else None
        if match:
            return int(match.group(1))
    return None


def stored_layers(config: ModelConfig, checkpoint: Checkpoint) -> int:
    """How many decoder layers the checkpoint holds (one past the highest index found)."""
    return 1 + max((i for key in checkpoint.keys() if (i := layer_index(config, key)) is not None), default=-1)


def check_layer_count(config: ModelConfig, checkpoint: Checkpoint) -> None:
    """The checkpoint holds no decoder layer beyond `num_hidden_layers`."""
    found = {i for key in checkpoint.keys() if (i := layer_index(config, key)) is not None}
    extra = sorted(i for i in found if i >= config.num_hidden_layers)
    if extra:
        layer_glob = get_family(config.model_type).layer_key(extra[-1], "*")
        raise AxcError(
            f"{checkpoint.path} holds {max(found) + 1} decoder layers ({layer_glob}) "
            f"but config.json says num_hidden_layers={config.num_hidden_layers}; fix the config"
        )


def _stored_name(config: ModelConfig, checkpoint: Checkpoint, key: str) -> str:
    """`key`, or the stored tensors missing for it when the family serves it as a view."""
    family = get_family(config.model_type)
    if family.views is None:
        return key
    layers = min(config.num_hidden_layers, (layer_index(config, key) or 0) + 1)
    view = family.views(dataclasses.replace(config, num_hidden_layers=layers)).get(key)
    missing = [source for source in view.sources if source not in checkpoint] if view is not None else []
    return f"{', '.join(missing)} (read as {key})" if missing else key


def check_checkpoint(config: ModelConfig, checkpoint: Checkpoint) -> None:
    """Raise `AxcError` naming the first expected tensor that is missing or has the wrong
    shape or dtype, or the first decoder layer the config does not count."""
    for tensor in _expected(config):
        if tensor.key not in checkpoint:
            raise AxcError(
                f"tensor {_stored_name(config, checkpoint, tensor.key)} missing from {checkpoint.path}; "
                f"the checkpoint does not match config.json ({_missing_reason(config, checkpoint, tensor.key)})"
            )
        shape = checkpoint.shape(tensor.key)
        if shape != tensor.shape:
            because = ", ".join(f"{name}={_field(config, name)}" for name in tensor.because)
            raise AxcError(
                f"tensor {tensor.key} has shape {list(shape)} in {checkpoint.file(tensor.key)} "
                f"but config.json implies {list(tensor.shape)} ({because})"
            )
        dtype, allowed = np.dtype(checkpoint.dtype(tensor.key)).name, _allowed_dtypes(tensor.key)
        if dtype not in allowed:
            raise AxcError(
                f"tensor {tensor.key} has dtype {dtype} in {checkpoint.file(tensor.key)}; "
                f"expected {' or '.join(allowed)}: the checkpoint is not a plain or GPTQ Hugging Face export"
            )
    check_layer_count(config, checkpoint)
