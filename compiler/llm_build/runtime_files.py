"""Files of the runtime's model directory besides the `.axmodel`s (ax-llm contract).

- `model.embed_tokens.weight.bfloat16.bin`: raw row-major `[vocab, hidden]` bf16, rounded
  to nearest even (the vendor's converter truncates), exactly vocab*hidden*2 bytes;
- `config.json`: what newer runtimes read to find the files;
- `post_config.json`: the host sampler's settings (greedy by default);
- the tokenizer files, copied from the input directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ml_dtypes
import numpy as np

from axc.frontend.config import ModelConfig
from axc.frontend.hf_import import embedding_key
from axc.params import Checkpoint
from axc.runtime_contract import EMBED_FILENAME, layer_filename, post_filename
from axc.atomic import atomic_output

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",
    "chat_template.jinja",
)
GREEDY_POST_CONFIG = {
    "enable_temperature": False,
    "temperature": 0.9,
    "enable_repetition_penalty": False,
    "repetition_penalty": 1.2,
    "penalty_window": 20,
    "enable_top_p_sampling": False,
    "top_p": 0.8,
    "enable_top_k_sampling": True,
    "top_k": 1,
}
ROWS_PER_CHUNK = 8192


def write_embedding(checkpoint: Checkpoint, out_dir: Path) -> Path:
    """Write the embedding table as raw bf16 (round to nearest even), chunk by chunk."""
    table = checkpoint.get(embedding_key(checkpoint))
    path = out_dir / EMBED_FILENAME
    with atomic_output(path, "wb") as stream:
        for start in range(0, table.shape[0], ROWS_PER_CHUNK):
            rows = np.asarray(table[start : start + ROWS_PER_CHUNK])
            if rows.dtype != np.dtype(ml_dtypes.bfloat16):
                rows = rows.astype(np.float32).astype(ml_dtypes.bfloat16)
            stream.write(np.ascontiguousarray(rows).tobytes())
    return path


def runtime_config(config: ModelConfig, prefill_len: int, tokenizer_file: str | None) -> dict:
    """The `config.json` newer ax-llm runtimes read from the model directory."""
    return {
        "model_name": config.model_name,
        "tokenizer_type": config.model_type,
        "url_tokenizer_model": tokenizer_file or "",
        "template_filename_axmodel": layer_filename(config.model_type, prefill_len, 0).replace("_l0_", "_l%d_"),
        "axmodel_num": config.num_hidden_layers,
        "filename_post_axmodel": post_filename(config.model_type),
        "filename_tokens_embed": EMBED_FILENAME,
        "tokens_embed_num": config.vocab_size,
        "tokens_embed_size": config.hidden_size,
    }


def write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")


def copy_tokenizer(model_dir: Path, out_dir: Path) -> list[str]:
    """Copy whichever tokenizer files the input has; returns their names."""
    copied = []
    for name in TOKENIZER_FILES:
        source = model_dir / name
        if source.is_file():
            shutil.copyfile(source, out_dir / name)
            copied.append(name)
    return copied


def write_runtime_files(
    config: ModelConfig, checkpoint: Checkpoint, model_dir: Path, out_dir: Path, prefill_len: int
) -> list[str]:
    """Everything but the `.axmodel` files; returns the names written."""
    write_embedding(checkpoint, out_dir)
    tokenizer = copy_tokenizer(model_dir, out_dir)
    tokenizer_file = "tokenizer.json" if "tokenizer.json" in tokenizer else None
    write_json(out_dir / "config.json", runtime_config(config, prefill_len, tokenizer_file))
    write_json(out_dir / "post_config.json", GREEDY_POST_CONFIG)
    return [EMBED_FILENAME, "config.json", "post_config.json", *tokenizer]
