"""The frontend of Gemma2, Phi-2 and Phi-3: checkpoint views (fused projections split,
`(1 + w)` and √hidden folded, renames), longrope's tables and cos/sin factor against
transformers' own, the short/long choice from the build's context, per-layer windows, and
one-line errors for configs and checkpoints that do not fit."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import transformers

from axc.errors import AxcError
from axc.frontend.config import load_config
from axc.frontend.views import open_model_checkpoint as open_checkpoint
from axc.frontend.hf_import import import_hf
from axc.params import Checkpoint
from tiny_models import family_config


def test_phi3_reads_its_fused_projections_as_split_views(tiny_model_dir) -> None:
    model_dir = tiny_model_dir("phi3")
    viewed, stored = open_checkpoint(model_dir), Checkpoint.open(model_dir)
    p = "model.layers.1."
    qkv = [viewed.get(f"{p}self_attn.{name}_proj.weight") for name in "qkv"]
    assert np.array_equal(np.concatenate(qkv), stored.get(f"{p}self_attn.qkv_proj.weight"))
    gate_up = [viewed.get(f"{p}mlp.{name}_proj.weight") for name in ("gate", "up")]
    assert np.array_equal(np.concatenate(gate_up), stored.get(f"{p}mlp.gate_up_proj.weight"))
    assert f"{p}self_attn.qkv_proj.weight" not in viewed and f"{p}mlp.gate_up_proj.weight" not in viewed.keys()


def test_gemma2_views_fold_the_norms_and_scale_the_embedding_rows(tiny_model_dir) -> None:
    model_dir = tiny_model_dir("gemma2")
    config = load_config(model_dir)
    viewed, stored = open_checkpoint(model_dir), Checkpoint.open(model_dir)
    for key in ("model.layers.2.pre_feedforward_layernorm.weight", "model.norm.weight"):
        assert viewed.dtype(key) == np.float32
        assert np.array_equal(viewed.get(key), stored.get(key) + np.float32(1))
    embed = stored.get("model.embed_tokens.weight")
    assert np.array_equal(viewed.get("model.embed_tokens.weight"), embed * np.float32(math.sqrt(config.hidden_size)))
    assert np.array_equal(viewed.rows("model.embed_tokens.weight", 3, 9), viewed.get("model.embed_tokens.weight")[3:9])
    assert np.array_equal(viewed.get("lm_head.weight"), embed)  # tied: the lm_head reads the unscaled table
    assert config.sliding_windows == (4, 0, 4) and config.attention_scale == 24**-0.5
    assert (config.attention_softcap, config.final_softcap, config.hidden_act) == (5.0, 3.0, "gelu_pytorch_tanh")


def test_phi_reads_its_final_layernorm_and_lm_head_bias(tiny_model_dir) -> None:
    model_dir = tiny_model_dir("phi")
    viewed, stored = open_checkpoint(model_dir), Checkpoint.open(model_dir)
    assert np.array_equal(viewed.get("model.norm.bias"), stored.get("model.final_layernorm.bias"))
    text = str(import_hf(model_dir))
    assert text.count("tfm.layer_norm") == 4  # three layers and @post
    assert '"lm_head.bias"' in text


LONGROPE = {"rope_type": "longrope", "short_factor": [1.0, 1.5, 2.0, 3.0], "long_factor": [2.0, 3.0, 5.0, 8.0]}


@pytest.mark.parametrize(
    "extra",
    [
        {},  # the cos/sin factor from max / original positions
        {"factor": 8.0},
        {"attention_factor": 1.25},
        {"type": "su"},  # Phi-3's older spellings, in `rope_scaling` as its released configs have them
        {"type": "yarn"},
    ],
)
def test_longrope_matches_transformers(tmp_path: Path, extra: dict[str, object]) -> None:
    rope = {**LONGROPE, **({} if "type" in extra else extra)}
    config = family_config(
        "phi3", hidden_size=16, num_attention_heads=2, num_key_value_heads=1, original_max_position_embeddings=32,
        max_position_embeddings=256, rope_parameters=rope,
    )
    config.save_pretrained(tmp_path)
    rotary = transformers.models.phi3.modeling_phi3.Phi3RotaryEmbedding(config)
    if "type" in extra:  # transformers 5.24 no longer reads these; the same model in the new spelling is the reference
        raw = json.loads((tmp_path / "config.json").read_text())
        del raw["rope_parameters"]
        raw["rope_scaling"] = {"type": extra["type"], "short_factor": rope["short_factor"], "long_factor": rope["long_factor"]}
        (tmp_path / "config.json").write_text(json.dumps(raw))
    ours = load_config(tmp_path).rope_scaling
    assert ours.kind == "longrope"
    assert ours.mscale == pytest.approx(rotary.attention_scaling, rel=1e-12)
    assert (ours.short_factor, ours.long_factor, ours.original_max_position_embeddings) == (
        tuple(LONGROPE["short_factor"]), tuple(LONGROPE["long_factor"]), 32,
    )
    assert not load_config(tmp_path, context_len=32).rope_scaling.long
    assert load_config(tmp_path, context_len=33).rope_scaling.long


def edited(source: Path, directory: Path, **changes: object) -> Path:
    shutil.copytree(source, directory)
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_config_and_checkpoint_mismatches_are_one_line(tiny_model_dir, tmp_path: Path) -> None:
    phi3 = tiny_model_dir("phi3")
    with pytest.raises(AxcError, match=r"gate_up_proj.weight has shape \[320, 64\] .* implies \[300, 64\]"):
        import_hf(edited(phi3, tmp_path / "inter", intermediate_size=150))
    rope = json.loads((phi3 / "config.json").read_text())["rope_parameters"]
    with pytest.raises(AxcError, match="have 3 entries but rotary_dim 16 needs 8"):
        load_config(edited(phi3, tmp_path / "factors", rope_parameters={**rope, "short_factor": [1.0] * 3, "long_factor": [1.0] * 3}))
    with pytest.raises(AxcError, match="layer_types / sliding_window"):
        load_config(edited(tiny_model_dir("gemma2"), tmp_path / "types", layer_types=["full_attention"]))
