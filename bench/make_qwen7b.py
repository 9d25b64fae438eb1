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

import argparse
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


def make(out: Path, layers: int, shard_bytes: int, seed: int = 0) -> Path:
    """Write the checkpoint into a temporary directory beside `out`, then rename it."""
    import transformers

    config = {**QWEN7B, "num_hidden_layers": layers}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        transformers.Qwen2Config(**config, torch_dtype="bfloat16").save_pretrained(tmp)
        groups = shards(tensors(config), shard_bytes)
        weight_map, total = {}, 0
        for k, entries in enumerate(groups, 1):
            name = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
            total += write_shard(tmp / name, entries, seed + k)
            weight_map.update({tensor: name for tensor, _ in entries})
            print(f"  {name}: {len(entries)} tensors", file=sys.stderr)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def ensure(out: Path | None = None, layers: int = 28, shard_bytes: int = 4 << 30) -> Path:
    """The checkpoint directory, made first if it is missing or incomplete."""
    out = out or default_out()
    if not is_complete(out, layers):
        start = time.perf_counter()
        print(f"making a random Qwen2.5-7B-shaped checkpoint ({layers} layers, bf16) in {out} ...", file=sys.stderr)
        make(out, layers, shard_bytes)
        print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help=f"output directory (default: {default_out()})")
    p.add_argument("--layers", type=int, default=28, help="number of decoder layers (default: 28)")
    p.add_argument("--shard-mib", type=int, default=4096, help="largest shard in MiB (default: 4096)")
    args = p.parse_args()
    if args.layers <= 0 or args.shard_mib <= 0:
        p.error("--layers and --shard-mib must be positive")
    print(ensure(args.out, args.layers, args.shard_mib << 20))


if __name__ == "__main__":
    main()
