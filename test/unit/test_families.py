"""The family registry: every family names its transformers reference and tiny preset, and
its tensor table is exactly what transformers saves for that model (read through the
family's views where it has any)."""

from __future__ import annotations

import json

import pytest
import safetensors
import transformers

from axc.frontend.checkpoint_check import expected_tensors
from axc.frontend.config import load_config
from axc.frontend.families import FAMILIES, get_family
from axc.frontend.views import open_model_checkpoint as open_checkpoint
from axc.frontend.views import ViewCheckpoint


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_family_is_registered_under_its_model_type(model_type: str) -> None:
    family = get_family(model_type)
    assert model_type in family.model_types
    assert hasattr(transformers, family.reference), family.reference


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_tensor_table_is_what_transformers_saves(tiny_model_dir, model_type: str) -> None:
    """Read through the family's views where it has them (a converted layout such as
    ChatGLM's), whose native reference then names the transformers class."""
    model_dir = tiny_model_dir(model_type)
    config = load_config(model_dir)
    native = model_dir / "reference" if (model_dir / "reference").is_dir() else model_dir
    assert json.loads((native / "config.json").read_text())["architectures"] == [get_family(model_type).reference]
    checkpoint = open_checkpoint(model_dir)
    read = {key: tuple(checkpoint.shape(key)) for key in checkpoint.keys()}
    expected = expected_tensors(config)
    if isinstance(checkpoint, ViewCheckpoint):  # besides, only stored tensors the model does not use
        assert not [key for key in read if key not in expected and key in checkpoint.views]
        read = {key: shape for key, shape in read.items() if key in expected}
    else:
        with safetensors.safe_open(str(model_dir / "model.safetensors"), "np") as f:
            assert read == {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    assert expected == read

