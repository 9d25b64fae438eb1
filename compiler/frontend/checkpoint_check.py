"""Check a checkpoint's tensor names and shapes against its config (headers only)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from axc.errors import AxcError
from axc.frontend.config import ModelConfig, QuantConfig
from axc.params import Checkpoint

GPTQ_TENSORS = ("qweight", "qzeros", "scales", "g_idx")
GPTQ_DTYPES = {"qweight": ("int32",), "qzeros": ("int32",), "scales": ("float16", "float32", "bfloat16"), "g_idx": ("int32", "int64")}
FLOAT_DTYPES = ("bfloat16", "float16", "float32")
LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.")


@dataclass(frozen=True)
class ExpectedTensor:
    """One tensor the config implies, with the config fields that decide it (for messages)."""

    key: str
    shape: tuple[int, ...]
    because: tuple[str, ...]


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


def _expected(config: ModelConfig) -> list[ExpectedTensor]:
    hidden, inter, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    q_dim = config.num_attention_heads * config.head_dim
    q_because = ("num_attention_heads", "head_dim", "hidden_size")
    kv_because = ("num_key_value_heads", "head_dim", "hidden_size")
    mlp_because = ("intermediate_size", "hidden_size")
    o_bias = config.attention_bias and config.model_type == "llama"
    tensors = [ExpectedTensor("model.embed_tokens.weight", (vocab, hidden), ("vocab_size", "hidden_size"))]
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        tensors.append(ExpectedTensor(f"{p}.input_layernorm.weight", (hidden,), ("hidden_size",)))
        tensors += _linear(config, f"{p}.self_attn.q_proj", q_dim, hidden, config.attention_bias, q_because)
        tensors += _linear(config, f"{p}.self_attn.k_proj", config.kv_dim, hidden, config.attention_bias, kv_because)
        tensors += _linear(config, f"{p}.self_attn.v_proj", config.kv_dim, hidden, config.attention_bias, kv_because)
        tensors += _linear(config, f"{p}.self_attn.o_proj", hidden, q_dim, o_bias, q_because)
        tensors.append(ExpectedTensor(f"{p}.post_attention_layernorm.weight", (hidden,), ("hidden_size",)))
        tensors += _linear(config, f"{p}.mlp.gate_proj", inter, hidden, config.mlp_bias, mlp_because)
        tensors += _linear(config, f"{p}.mlp.up_proj", inter, hidden, config.mlp_bias, mlp_because)
        tensors += _linear(config, f"{p}.mlp.down_proj", hidden, inter, config.mlp_bias, mlp_because)
    tensors.append(ExpectedTensor("model.norm.weight", (hidden,), ("hidden_size",)))
    if not config.tie_word_embeddings:
        tensors.append(ExpectedTensor("lm_head.weight", (vocab, hidden), ("vocab_size", "hidden_size")))
    return tensors


def expected_tensors(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The Hugging Face tensor names and shapes of a Llama/Qwen2 model with this config."""
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
    if key.startswith("model.layers."):
        return f"num_hidden_layers={config.num_hidden_layers}"
    if key == "lm_head.weight":
        return "tie_word_embeddings=False"
    return f"model_type={config.model_type}"


def _allowed_dtypes(key: str) -> tuple[str, ...]:
    suffix = key.rsplit(".", 1)[-1]
    return GPTQ_DTYPES.get(suffix, FLOAT_DTYPES)


def check_layer_count(config: ModelConfig, checkpoint: Checkpoint) -> None:
    """The checkpoint holds no decoder layer beyond `num_hidden_layers`."""
    found = {int(m.group(1)) for key in checkpoint.keys() if (m := LAYER_KEY.match(key))}
    extra = sorted(i for i in found if i >= config.num_hidden_layers)
    if extra:
        raise AxcError(
            f"{checkpoint.path} holds {max(found) + 1} decoder layers (model.layers.{extra[-1]}.*) "
            f"but config.json says num_hidden_layers={config.num_hidden_layers}; fix the config"
        )


def check_checkpoint(config: ModelConfig, checkpoint: Checkpoint) -> None:
    """Raise `AxcError` naming the first expected tensor that is missing or has the wrong
    shape or dtype, or the first decoder layer the config does not count."""
    for tensor in _expected(config):
        if tensor.key not in checkpoint:
            raise AxcError(
                f"tensor {tensor.key} missing from {checkpoint.path}; "
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
