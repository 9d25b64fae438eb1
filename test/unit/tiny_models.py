"""Tiny random Hugging Face models built offline from a config (no hub access)."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors.numpy
import torch
import transformers

from axc.frontend.families import FAMILIES, get_family
from axc.frontend.families.llama import TINY

WIDE = dict(TINY, vocab_size=512, hidden_size=256, intermediate_size=512)
"""Wide enough for group-wise quantization: hidden 256 = two groups of 128.

The `*-wide` models carry a residual stream at RMS 1 (embedding rows ~ N(0, 1)), as trained
LLMs do past their first layers, so a layer's output is not dominated by its own branches
and per-layer accuracy measures the branches' error the way it does on real models.
"""


def family_config(model_type: str, **changes: object) -> transformers.PretrainedConfig:
    """The transformers config of the family's tiny preset (`Family.tiny`), changed."""
    return transformers.AutoConfig.for_model(model_type, **{**get_family(model_type).tiny, **changes})


CONFIGS = {
    **{model_type: (lambda t=model_type: family_config(t)) for model_type in FAMILIES},
    "qwen2-wide": lambda: transformers.Qwen2Config(**WIDE, tie_word_embeddings=True, rope_theta=1e6),
    "llama-wide": lambda: transformers.LlamaConfig(**WIDE, tie_word_embeddings=False, rope_theta=5e5),
}


def build_tiny_model(family: str, out_dir: Path, seed: int = 0, bf16_exact: bool = False) -> Path:
    """Save a randomly initialised `family` model (fp32) to `out_dir`; with `bf16_exact`
    every weight is a bf16 value (stored as fp32). A family whose modelling code is not in
    transformers gets its own layout, with the native equivalent in `out_dir/reference`."""
    from family_models import CONVERTED

    if family in CONVERTED:
        assert not bf16_exact, family
        return CONVERTED[family](out_dir)[0]
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
        if bf16_exact:
            for param in model.parameters():
                param.copy_(param.to(torch.bfloat16).to(torch.float32))
    model.save_pretrained(out_dir)
    return out_dir


def reference_logits(model_dir: Path, token_ids: list[int]) -> torch.Tensor:
    """transformers' own fp32 forward over the whole sequence: `[T, vocab]` (of the native
    equivalent in `model_dir/reference` when there is one)."""
    if (model_dir / "reference").is_dir():
        model_dir = model_dir / "reference"
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits[0]


def write_random_layer(family: str, out_dir: Path, seed: int = 0, **sizes: int) -> Path:
    """A one-layer checkpoint of `family` ("qwen2" or "llama") with the given config sizes
    (hidden_size, intermediate_size, num_attention_heads, num_key_value_heads, vocab_size,
    head_dim for llama), random bf16 weights written with numpy: real layer widths without
    torch's initialisation cost."""
    common = dict(num_hidden_layers=1, max_position_embeddings=4096, tie_word_embeddings=True, rope_theta=1e6, **sizes)
    config = transformers.Qwen2Config(**common) if family == "qwen2" else transformers.LlamaConfig(**common)
    config.save_pretrained(out_dir)
    rng = np.random.default_rng(seed)
    hidden, inter = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q, kv = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim

    def random(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims, dtype=np.float32) * 0.05).astype(ml_dtypes.bfloat16)

    p = "model.layers.0."
    tensors = {
        "model.embed_tokens.weight": random(config.vocab_size, hidden),
        "model.norm.weight": np.ones(hidden, ml_dtypes.bfloat16),
        p + "input_layernorm.weight": np.ones(hidden, ml_dtypes.bfloat16),
        p + "post_attention_layernorm.weight": np.ones(hidden, ml_dtypes.bfloat16),
        p + "self_attn.q_proj.weight": random(q, hidden),
        p + "self_attn.k_proj.weight": random(kv, hidden),
        p + "self_attn.v_proj.weight": random(kv, hidden),
        p + "self_attn.o_proj.weight": random(hidden, q),
        p + "mlp.gate_proj.weight": random(inter, hidden),
        p + "mlp.up_proj.weight": random(inter, hidden),
        p + "mlp.down_proj.weight": random(hidden, inter),
    }
    if family == "qwen2":
        for proj, width in (("q", q), ("k", kv), ("v", kv)):
            tensors[p + f"self_attn.{proj}_proj.bias"] = random(width)
    safetensors.numpy.save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir
