"""Write a random checkpoint shaped like Qwen2.5-0.5B (offline, bf16, ~1 GB).

    python bench/make_qwen05b.py [--out bench/out/qwen05b] [--layers 24]

The weights are random (transformers' own initialisation); only the shapes, dtypes, file
layout and config spelling match the real model, which is all that import benchmarks need.
An existing complete checkpoint in the output directory is left alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkpoint_dir  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "qwen05b"

QWEN05B = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    head_dim=64,
    hidden_act="silu",
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    tie_word_embeddings=True,
    use_sliding_window=False,
    bos_token_id=151643,
    eos_token_id=151643,
)


def is_complete(directory: Path, layers: int) -> bool:
    """True when `directory` holds a readable checkpoint of a `layers`-layer Qwen2.5-0.5B."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        return False
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    wanted = {**QWEN05B, "num_hidden_layers": layers}
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_key_value_heads"):
        if config.get(key) != wanted[key]:
            return False
    from safetensors import SafetensorError, safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return False
    keys: set[str] = set()
    try:
        for path in files:
            with safe_open(str(path), framework="numpy") as handle:
                keys.update(handle.keys())
    except (SafetensorError, OSError):
        return False
    # embed + norm + 12 tensors per layer (q/k/v with bias, o, 2 norms, 3 MLP).
    return len(keys) == 2 + 12 * layers


def write(directory: Path, layers: int, seed: int = 0) -> None:
    """Save the random model into `directory`."""
    import torch
    import transformers

    config = transformers.Qwen2Config(**{**QWEN05B, "num_hidden_layers": layers})
    config.dtype = "bfloat16"
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(directory)


def ensure(out: Path = DEFAULT_OUT, layers: int = 24) -> Path:
    """The checkpoint directory, made first if it is missing or incomplete."""
    return checkpoint_dir.ensure(out, layers, "Qwen2.5-0.5B-shaped", is_complete, lambda tmp: write(tmp, layers))


if __name__ == "__main__":
    checkpoint_dir.main(__doc__, DEFAULT_OUT, 24, ensure)
