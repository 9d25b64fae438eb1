"""InternVL2.5 / InternVL3 (`internvl_chat`, and transformers' `internvl`): the language
model builds as its own family from `language_model.*`, the vision tower is ignored with
one log line (test_family_builds.py, with its Qwen2 reference matched from the binaries)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from family_models import write_internvl_chat, write_internvl_native

from axc.errors import AxcError
from axc.frontend.config import load_config
from axc.frontend.views import open_model_checkpoint
from axc.frontend.hf_import import import_hf

WRITERS = {"internvl_chat": write_internvl_chat, "internvl": write_internvl_native}


@pytest.fixture(scope="module")
def internvl_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {name: write(tmp_path_factory.mktemp(name))[0] for name, write in WRITERS.items()}


@pytest.mark.parametrize("wrapper", list(WRITERS))
def test_the_language_model_is_read_as_its_family(internvl_dirs: dict[str, Path], wrapper: str) -> None:
    c = load_config(internvl_dirs[wrapper])
    assert (c.wrapper, c.model_type, c.num_hidden_layers, c.head_dim, c.tie_word_embeddings) == (wrapper, "qwen2", 3, 24, True)
    checkpoint = open_model_checkpoint(internvl_dirs[wrapper])
    assert "model.embed_tokens.weight" in checkpoint and "model.layers.2.self_attn.q_proj.bias" in checkpoint
    assert all(key.startswith(("model.", "lm_head.")) for key in checkpoint.keys()), checkpoint.keys()
    assert "language_model.model.embed_tokens.weight" not in checkpoint


def test_a_wrapper_without_its_language_config_is_one_line(internvl_dirs: dict[str, Path], tmp_path: Path) -> None:
    model = shutil.copytree(internvl_dirs["internvl_chat"], tmp_path / "m", ignore=shutil.ignore_patterns("reference"))
    raw = json.loads((model / "config.json").read_text())
    del raw["llm_config"]
    (model / "config.json").write_text(json.dumps(raw))
    with pytest.raises(AxcError, match="a internvl_chat config needs a llm_config object"):
        import_hf(model)
