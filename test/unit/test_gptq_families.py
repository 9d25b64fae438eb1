"""GPTQ checkpoints of Qwen3 (int8) and HunYuan dense (int4 g128) written by the real
GPTQModel 7.6.0 (`test/fixtures/gptq/make_family_fixtures.py`): the import reproduces the
tool's own dequantization bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from axc.frontend.config import load_config
from axc.checkpoints import open_checkpoint
from axc.checkpoints.gptq import GptqCheckpoint

GPTQ = Path(__file__).parents[1] / "fixtures" / "gptq"


@pytest.mark.parametrize("name, bits", [("qwen3-tiny-gptq-int8", 8), ("hunyuan-tiny-gptq-int4", 4)])
def test_import_is_bit_exact_to_the_tools_dequantization(name: str, bits: int) -> None:
    """The tool computes `scales * (q - zeros)` in fp16; the import's fp32 weights are the
    exact products, so rounding them to fp16 must give the tool's values exactly."""
    config = load_config(GPTQ / name)
    assert config.quant is not None and (config.quant.bits, config.quant.group_size) == (bits, 128)
    checkpoint = open_checkpoint(GPTQ / name)
    assert isinstance(checkpoint, GptqCheckpoint)
    tool = safetensors.numpy.load_file(str(GPTQ / name / "tool_dequant_layer0.safetensors"))
    assert sorted(tool) == ["model.layers.0.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.weight"]
    for key, expected in tool.items():
        ours = np.asarray(checkpoint.get(key))
        assert ours.dtype == np.float32 and ours.shape == expected.shape
        np.testing.assert_array_equal(ours.astype(np.float16), expected)
        assert np.count_nonzero(expected) > expected.size // 2
