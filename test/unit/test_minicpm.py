"""MiniCPM (`minicpm`): the muP scalars folded into weights and the static LongRoPE choice.
The whole model against the folded `LlamaForCausalLM` is in test_against_transformers.py
(IR) and test_family_builds.py (the binaries)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from family_models import write_minicpm

from axc.errors import AxcError
from axc.frontend.config import load_config
from axc.frontend.views import open_model_checkpoint
from axc.frontend.hf_import import import_hf


@pytest.fixture(scope="module")
def minicpm_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    return {tied: write_minicpm(tmp_path_factory.mktemp(f"minicpm-{tied}"), tied)[0] for tied in (True, False)}


def changed(source: Path, target: Path, **change: object) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("reference"))
    raw = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**raw, **change}))
    return target


@pytest.mark.parametrize("tied", [True, False])
def test_scalars_are_folded_into_the_weights(minicpm_dirs: dict[bool, Path], tied: bool) -> None:
    model = minicpm_dirs[tied]
    stored = safetensors.numpy.load_file(model / "model.safetensors")
    checkpoint, c = open_model_checkpoint(model), load_config(model)
    assert (c.embedding_scale, c.logit_scale, c.tie_word_embeddings) == (4.0, 16 / 64, False)
    assert c.residual_scale == pytest.approx(1.4 / math.sqrt(3))
    embed = stored["model.embed_tokens.weight"]
    np.testing.assert_allclose(checkpoint.get("model.embed_tokens.weight"), embed * 4.0, rtol=1e-7)
    head = embed if tied else stored["lm_head.weight"]
    np.testing.assert_allclose(checkpoint.get("lm_head.weight"), head * 0.25, rtol=1e-7)
    o = stored["model.layers.2.self_attn.o_proj.weight"]
    np.testing.assert_allclose(checkpoint.get("model.layers.2.self_attn.o_proj.weight"), o * c.residual_scale, rtol=1e-6)
    q = stored["model.layers.2.self_attn.q_proj.weight"]
    np.testing.assert_array_equal(checkpoint.get("model.layers.2.self_attn.q_proj.weight"), q)


def test_longrope_table_is_chosen_once_from_max_position_embeddings(minicpm_dirs: dict[bool, Path], tmp_path: Path) -> None:
    """Long (and cos/sin × √(1 + ln(256/16)/ln 16)) whatever the build's context; short
    when max_position_embeddings is the original context (mscale 1)."""
    for context in (None, 8, 31):
        scaling = load_config(minicpm_dirs[True], context_len=context).rope_scaling
        assert scaling.long and scaling.mscale == pytest.approx(math.sqrt(2.0))
    short = load_config(changed(minicpm_dirs[True], tmp_path / "m", max_position_embeddings=16), context_len=31).rope_scaling
    assert not short.long and short.mscale == 1.0
    rope = next(op for op in import_hf(minicpm_dirs[True]).walk() if op.name == "tfm.rope")
    assert rope.properties["rope"].value("mscale") == pytest.approx(math.sqrt(2.0))


@pytest.mark.parametrize("key, value", [("scale_emb", 0), ("scale_depth", "1.4"), ("dim_model_base", -256)])
def test_bad_scalars_are_refused(minicpm_dirs: dict[bool, Path], tmp_path: Path, key: str, value: object) -> None:
    with pytest.raises(AxcError, match=f"{key}=.* must be a positive number"):
        load_config(changed(minicpm_dirs[False], tmp_path / "m", **{key: value}))

