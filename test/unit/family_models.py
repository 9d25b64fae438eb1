"""Tiny random checkpoints of every family, built offline, and where the family's own
modelling code is not in transformers, the native model that computes the same thing.

`FAMILY_MODELS[name](directory)` writes the checkpoint axc builds and returns it with the
directory of the transformers model that is its reference (the same one for native
families). The `item7-*` entries are the already-covered names, at their released configs'
shape features (tied embeddings, llama3 rope, head ratios, explicit head_dim), scaled down.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import transformers
from tiny_models import family_config

LAYERS = 3
BASE = dict(vocab_size=128, num_hidden_layers=LAYERS, max_position_embeddings=256)
FAMILY_BUILDS = {
    "bf16": ("AX650", "bf16"), "s8": ("AX620E", "bf16"), "bf16-fp32": ("AX650", "fp32"),
    "bf16-ax620e": ("AX620E", "bf16"), "s8-ax650": ("AX650", "bf16"),
}
"""Build kind → (chip, hidden-state type); the weight type is the kind's first word. The
last two are the other chip of each weight type (`AXC_FAMILY_BOTH_CHIPS=1`)."""
KV, PREFILL, LASTS = 31, 8, (8, 16)
"""The builds' kv_cache_len, prefill_len and last_kv_cache_len (three prefill groups)."""


def save_random(config: transformers.PretrainedConfig, directory: Path, seed: int = 0) -> Path:
    """A randomly initialised model of `config` (fp32) with weights large enough to matter."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.add_(torch.randn_like(param) * (0.02 if "norm" in name else 0.05))
    model.save_pretrained(directory)
    return directory


def native(make: Callable[[], transformers.PretrainedConfig]) -> Callable[[Path], tuple[Path, Path]]:
    def write(directory: Path) -> tuple[Path, Path]:
        save_random(make(), directory)
        return directory, directory

    return write


def llama3_rope(theta: float, factor: float, original: int) -> dict[str, object]:
    return {
        "rope_type": "llama3", "rope_theta": theta, "factor": factor,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": original,
    }


FAMILY_MODELS: dict[str, Callable[[Path], tuple[Path, Path]]] = {
    # Gemma2: head_dim 16 != 48 / 4, windows of 4 on layers 0 and 2, both soft-caps, tied.
    "gemma2": native(lambda: family_config("gemma2")),
    # Phi-2: partial rotary 0.4 (6 of 16), parallel block, LayerNorms and lm_head with bias.
    "phi": native(lambda: family_config("phi")),
    # Phi-3: window 5 on every layer; longrope with an original context of 16 < kv_cache_len,
    # so the long table and its cos/sin factor are the ones in use.
    "phi3": native(lambda: family_config("phi3", original_max_position_embeddings=16)),
    # DeepSeek-R1-Distill-Qwen-1.5B: qwen2, 12:2 heads, untied, theta 1e4.
    "item7-deepseek-r1-distill-qwen": native(lambda: transformers.Qwen2Config(
        **BASE, hidden_size=96, intermediate_size=160, num_attention_heads=6, num_key_value_heads=1,
        tie_word_embeddings=False, rope_theta=1e4)),
    # Qwen2.5-0.5B: qwen2, 14:2 heads of 64, tied, theta 1e6.
    "item7-qwen2.5": native(lambda: transformers.Qwen2Config(
        **BASE, hidden_size=112, intermediate_size=192, num_attention_heads=7, num_key_value_heads=1,
        tie_word_embeddings=True, rope_theta=1e6)),
    # Llama-3.2-1B: 32:8 heads, tied, llama3 rope (factor 32, original 8192 -> 64 here).
    "item7-llama3.2": native(lambda: transformers.LlamaConfig(
        **BASE, hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=1,
        tie_word_embeddings=True, rope_parameters=llama3_rope(5e5, 32.0, 64))),
    # SmolLM2-135M: llama, 9:3 heads, tied, theta 1e5.
    "item7-smollm2": native(lambda: transformers.LlamaConfig(
        **BASE, hidden_size=72, intermediate_size=128, num_attention_heads=9, num_key_value_heads=3,
        tie_word_embeddings=True, rope_theta=1e5)),
    # TinyLlama-1.1B: llama, 32:4 heads, untied, theta 1e4.
    "item7-tinyllama": native(lambda: transformers.LlamaConfig(
        **BASE, hidden_size=64, intermediate_size=160, num_attention_heads=8, num_key_value_heads=1,
        tie_word_embeddings=False, rope_theta=1e4)),
    # OpenBuddy (Llama-3.1 based): llama3 rope, untied; head_dim set apart from hidden / heads.
    "item7-openbuddy": native(lambda: transformers.LlamaConfig(
        **BASE, hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, head_dim=24,
        tie_word_embeddings=False, rope_parameters=llama3_rope(5e5, 8.0, 64))),
}


def reference_logits(model_dir: Path, token_ids: list[int], dtype: torch.dtype = torch.float32) -> "np.ndarray":
    """transformers' forward over the whole sequence in `dtype`: `[T, vocab]` fp32 numpy."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits[0].float().numpy()
