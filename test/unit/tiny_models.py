"""Tiny random Hugging Face models built offline from a config (no hub access)."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

TINY = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)

WIDE = dict(TINY, vocab_size=512, hidden_size=256, intermediate_size=512)
"""Wide enough for group-wise quantization: hidden 256 = two groups of 128.

The `*-wide` models carry a residual stream at RMS 1 (embedding rows ~ N(0, 1)), as trained
LLMs do past their first layers, so a layer's output is not dominated by its own branches
and per-layer accuracy measures the branches' error the way it does on real models.
"""

CONFIGS = {
    "qwen2": lambda: transformers.Qwen2Config(**TINY, tie_word_embeddings=True, rope_theta=1e6),
    "llama": lambda: transformers.LlamaConfig(
        **TINY,
        tie_word_embeddings=False,
        rope_theta=5e5,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    ),
    "qwen2-wide": lambda: transformers.Qwen2Config(**WIDE, tie_word_embeddings=True, rope_theta=1e6),
    "llama-wide": lambda: transformers.LlamaConfig(**WIDE, tie_word_embeddings=False, rope_theta=5e5),
}


def build_tiny_model(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Save a randomly initialised `family` model (fp32) to `out_dir`."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[family]())
    with torch.no_grad():  # larger weights than the default init, so layers do real work
        if family.endswith("-wide"):
            for name, param in model.named_parameters():
                if "norm" not in name:
                    param.add_(torch.randn_like(param) * 0.03)
            model.get_input_embeddings().weight.normal_(0.0, 1.0)
        else:
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(out_dir)
    return out_dir


def reference_logits(model_dir: Path, token_ids: list[int]) -> torch.Tensor:
    """transformers' own fp32 forward over the whole sequence: `[T, vocab]`."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits[0]
