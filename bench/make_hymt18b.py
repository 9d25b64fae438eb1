"""Write a random checkpoint shaped like HY-MT1.5-1.8B (HunYuan dense; offline, bf16, ~3.6 GB).

    python bench/make_hymt18b.py [--out bench/out/hymt18b] [--layers 32]

Shapes: hidden 2048, 32 layers, 16 heads, 4 KV heads, head_dim 128, intermediate 6144,
vocab 120818, tied embeddings, q/k norms, `rope_scaling {type: dynamic, alpha: 1000}`.
The weights are random bf16 values of magnitude in [2^-7, 2^-6) with random signs (drawn
as bit patterns, ~20x faster than normals; norm weights 1), written in shards of
four layers with a `model.safetensors.index.json`; only shapes, dtypes, names and the
config spelling matter to build benchmarks. An existing complete checkpoint is left alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checkpoint_dir  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "hymt18b"
LAYERS_PER_SHARD = 4

HYMT18B = dict(
    model_type="hunyuan_v1_dense",
    architectures=["HunYuanDenseV1ForCausalLM"],
    vocab_size=120818,
    hidden_size=2048,
    intermediate_size=6144,
    num_hidden_layers=32,
    num_attention_heads=16,
    num_key_value_heads=4,
    head_dim=128,
    hidden_act="silu",
    max_position_embeddings=262144,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    rope_scaling={"type": "dynamic", "alpha": 1000.0, "factor": 1.0, "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    use_qk_norm=True,
    use_cla=False,
    attention_bias=False,
    mlp_bias=False,
    tie_word_embeddings=True,
    torch_dtype="bfloat16",
    bos_token_id=1,
    eos_token_id=2,
)


def layer_shapes(layers: int) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, embedding first."""
    c = HYMT18B
    hidden, inter, head_dim = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * head_dim, c["num_key_value_heads"] * head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (c["vocab_size"], hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (hidden,),
            p + "self_attn.q_proj.weight": (q, hidden),
            p + "self_attn.k_proj.weight": (kv, hidden),
            p + "self_attn.v_proj.weight": (kv, hidden),
            p + "self_attn.query_layernorm.weight": (head_dim,),
            p + "self_attn.key_layernorm.weight": (head_dim,),
            p + "self_attn.o_proj.weight": (hidden, q),
            p + "post_attention_layernorm.weight": (hidden,),
            p + "mlp.gate_proj.weight": (inter, hidden),
            p + "mlp.up_proj.weight": (inter, hidden),
            p + "mlp.down_proj.weight": (hidden, inter),
        })
    shapes["model.norm.weight"] = (hidden,)
    return shapes


def is_complete(directory: Path, layers: int) -> bool:
    index = directory / "model.safetensors.index.json"
    try:
        config = json.loads((directory / "config.json").read_text())
        weights = json.loads(index.read_text())["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError):
        return False
    return config.get("num_hidden_layers") == layers and set(weights) == set(layer_shapes(layers)) and all(
        (directory / name).is_file() for name in set(weights.values())
    )


def write(directory: Path, layers: int, seed: int = 0) -> None:
    """Write the shards, their index and the config into `directory`."""
    import ml_dtypes
    import numpy as np
    import safetensors.numpy

    rng = np.random.default_rng(seed)
    shapes = layer_shapes(layers)
    shards: list[list[str]] = [["model.embed_tokens.weight", "model.norm.weight"]]
    for start in range(0, layers, LAYERS_PER_SHARD):
        prefixes = tuple(f"model.layers.{i}." for i in range(start, min(start + LAYERS_PER_SHARD, layers)))
        shards.append([name for name in shapes if name.startswith(prefixes)])
    weight_map = {}
    for number, names in enumerate(shards, 1):
        file = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name in names:
            shape = shapes[name]
            if len(shape) == 1:
                tensors[name] = np.ones(shape, ml_dtypes.bfloat16)
            else:  # sign and 7 mantissa bits random, exponent fixed: |w| in [2^-7, 2^-6)
                bits = (rng.integers(0, 1 << 16, size=shape, dtype=np.uint16) & 0x807F) | 0x3C00
                tensors[name] = bits.view(ml_dtypes.bfloat16)
            weight_map[name] = file
        safetensors.numpy.save_file(tensors, str(directory / file), metadata={"format": "pt"})
        del tensors
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    (directory / "config.json").write_text(json.dumps({**HYMT18B, "num_hidden_layers": layers}, indent=2))


def ensure(out: Path = DEFAULT_OUT, layers: int = 32) -> Path:
    """The checkpoint directory, made first if it is missing or incomplete."""
    return checkpoint_dir.ensure(out, layers, "HY-MT1.5-1.8B-shaped", is_complete, lambda tmp: write(tmp, layers))


if __name__ == "__main__":
    checkpoint_dir.main(__doc__, DEFAULT_OUT, 32, ensure)
