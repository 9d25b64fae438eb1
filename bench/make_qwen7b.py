"""Write a random checkpoint shaped like Qwen2.5-7B (bf16, sharded safetensors, ~15 GB),
streaming, in bounded memory.

    python bench/make_qwen7b.py [--out DIR] [--layers 28] [--shard-mib 4096]

DIR defaults to `$AXC_BENCH_CACHE/qwen7b`, else `~/.cache/axc-bench/qwen7b`: outside the
repository, made once and reused (an existing complete checkpoint is left alone). Only the
shapes, dtypes, file layout and config spelling match the real model: random bf16 values
of magnitude 2^-9 .. 2^-5 (finite, like a trained layer's), norms at 1. Each tensor is
written a chunk of rows at a time straight into its shard (the safetensors layout: an
8-byte header length, the JSON header, the data), so memory stays at one chunk (64 MiB)
whatever the model size; the shards are written into a temporary directory beside DIR and
renamed into place when complete.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkpoint_dir  # noqa: E402

QWEN7B = dict(
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    hidden_act="silu",
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    tie_word_embeddings=False,
    use_sliding_window=False,
    bos_token_id=151643,
    eos_token_id=151645,
)
CHUNK_BYTES = 64 << 20


def default_out() -> Path:
    cache = os.environ.get("AXC_BENCH_CACHE")
    return (Path(cache) if cache else Path.home() / ".cache" / "axc-bench") / "qwen7b"


def tensors(config: dict[str, object]) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor of the checkpoint, in file order, with its shape."""
    hidden, inter, vocab = int(config["hidden_size"]), int(config["intermediate_size"]), int(config["vocab_size"])  # type: ignore[call-overload]
    kv = int(config["num_key_value_heads"]) * hidden // int(config["num_attention_heads"])  # type: ignore[call-overload]
    names: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(int(config["num_hidden_layers"])):  # type: ignore[call-overload]
        p = f"model.layers.{i}."
        names += [
            (p + "input_layernorm.weight", (hidden,)),
            (p + "self_attn.q_proj.weight", (hidden, hidden)), (p + "self_attn.q_proj.bias", (hidden,)),
            (p + "self_attn.k_proj.weight", (kv, hidden)), (p + "self_attn.k_proj.bias", (kv,)),
            (p + "self_attn.v_proj.weight", (kv, hidden)), (p + "self_attn.v_proj.bias", (kv,)),
            (p + "self_attn.o_proj.weight", (hidden, hidden)),
            (p + "post_attention_layernorm.weight", (hidden,)),
            (p + "mlp.gate_proj.weight", (inter, hidden)), (p + "mlp.up_proj.weight", (inter, hidden)),
            (p + "mlp.down_proj.weight", (hidden, inter)),
        ]
    names += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    return names


def shards(names: list[tuple[str, tuple[int, ...]]], shard_bytes: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Consecutive tensors grouped into shards of at most `shard_bytes` (a larger tensor alone)."""
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in names:
        nbytes = 2 * math.prod(shape)
        if groups[-1] and size + nbytes > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += nbytes
    return groups


def random_bf16(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` bf16 bit patterns: random sign and 7-bit mantissa, exponent 2^-9 .. 2^-6."""
    bits = np.frombuffer(rng.bytes(2 * count), np.uint16).copy()
    exponent = ((bits >> np.uint16(7)) & np.uint16(3)) + np.uint16(127 - 9)
    bits &= np.uint16(0x807F)
    bits |= exponent << np.uint16(7)
    return bits


def write_shard(path: Path, entries: list[tuple[str, tuple[int, ...]]], seed: int) -> int:
    """One safetensors file, tensor by tensor and chunk by chunk; its data bytes."""
    header: dict[str, object] = {}
    offset = 0
    for name, shape in entries:
        nbytes = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with path.open("wb") as stream:
        stream.write(struct.pack("<Q", len(text)))
        stream.write(text)
        for index, (name, shape) in enumerate(entries):
            rng = np.random.default_rng([seed, index])
            count = math.prod(shape)
            if name.endswith("norm.weight"):
                stream.write(np.full(count, 0x3F80, np.uint16).tobytes())  # 1.0, as transformers initialises norms
                continue
            step = CHUNK_BYTES // 2
            for start in range(0, count, step):
                stream.write(random_bf16(rng, min(step, count - start)).tobytes())
    return offset


def is_complete(directory: Path, layers: int) -> bool:
    """True when `directory` holds every shard of a `layers`-layer checkpoint at full size."""
    try:
        config = json.loads((directory / "config.json").read_text())
        index = json.loads((directory / "model.safetensors.index.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    wanted = {**QWEN7B, "num_hidden_layers": layers}
    if any(config.get(k) != wanted[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")):
        return False
    if set(index.get("weight_map", {})) != {name for name, _ in tensors(wanted)}:
        return False
    total = 0
    for shard in set(index["weight_map"].values()):
        path = directory / shard
        if not path.is_file():
            return False
        with path.open("rb") as stream:
            head = stream.read(8)
        total += path.stat().st_size - 8 - struct.unpack("<Q", head)[0] if len(head) == 8 else -1
    return total == index.get("metadata", {}).get("total_size")


def write(directory: Path, layers: int, shard_bytes: int, seed: int = 0) -> None:
    """Write the config, the shards and their index into `directory`."""
    import transformers

    config = {**QWEN7B, "num_hidden_layers": layers}
    transformers.Qwen2Config(**config, torch_dtype="bfloat16").save_pretrained(directory)
    groups = shards(tensors(config), shard_bytes)
    weight_map, total = {}, 0
    for k, entries in enumerate(groups, 1):
        name = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        total += write_shard(directory / name, entries, seed + k)
        weight_map.update({tensor: name for tensor, _ in entries})
        print(f"  {name}: {len(entries)} tensors", file=sys.stderr)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def ensure(out: Path | None = None, layers: int = 28, shard_mib: int = 4096) -> Path:
    """The checkpoint directory, made first if it is missing or incomplete."""
    return checkpoint_dir.ensure(
        out or default_out(), layers, "Qwen2.5-7B-shaped (bf16)", is_complete,
        lambda tmp: write(tmp, layers, shard_mib << 20),
    )


if __name__ == "__main__":
    checkpoint_dir.main(
        __doc__, default_out(), 28, ensure,
        (("--shard-mib", {"default": 4096, "help": "largest shard in MiB (default: 4096)"}),),
    )
