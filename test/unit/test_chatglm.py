"""ChatGLM3 (`chatglm`): its own config keys, the views of its fused and interleaved
tensors, and bad checkpoints. The whole model against `GlmForCausalLM` is in
test_against_transformers.py (IR) and test_family_builds.py (the binaries)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from family_models import write_chatglm
from test_cli_errors import assert_one_line_error, run_tool
from transformers.models.glm import modeling_glm
from transformers.models.llama import modeling_llama

from axc.errors import AxcError
from axc.frontend.config import load_config
from axc.frontend.families.chatglm import rotary_order
from axc.frontend.views import open_model_checkpoint
from axc.frontend.hf_import import import_hf


@pytest.fixture(scope="module")
def chatglm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chatglm(tmp_path_factory.mktemp("chatglm"))[0]


def broken_copy(source: Path, target: Path, config: dict[str, object] | None = None, drop: str | None = None, resize: str | None = None) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("reference"))
    if config:
        raw = json.loads((target / "config.json").read_text())
        (target / "config.json").write_text(json.dumps({**raw, **config}))
    if drop or resize:
        state = torch.load(target / "pytorch_model.bin", weights_only=True)
        if drop:
            del state[drop]
        if resize:
            state[resize] = state[resize][:-1]
        torch.save(state, target / "pytorch_model.bin")
    return target


def test_config_is_read_from_chatglm_keys(chatglm_dir: Path) -> None:
    c = load_config(chatglm_dir)
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (3, 6, 2, 16)
    assert (c.hidden_size, c.intermediate_size, c.vocab_size, c.max_position_embeddings) == (64, 96, 128, 256)
    assert (c.rotary_dim, c.rope_theta, c.rms_norm_eps, c.attention_bias) == (8, 1e4 * 50, 1e-5, True)
    assert not c.tie_word_embeddings


def test_without_multi_query_attention_every_head_has_its_kv(chatglm_dir: Path, tmp_path: Path) -> None:
    c = load_config(broken_copy(chatglm_dir, tmp_path / "m", {"multi_query_attention": False}))
    assert c.num_key_value_heads == c.num_attention_heads == 6


def test_permuted_rows_turn_interleaved_rope_into_half_split() -> None:
    """transformers' GLM rope (interleaved pairs on the first half of each head) equals
    Llama's half-split rope on the permuted rotary rows, permuted; not without it."""
    heads, head_dim, rotary, tokens = 3, 16, 8, 5
    config = modeling_glm.GlmConfig(head_dim=head_dim, num_attention_heads=heads, hidden_size=48, rope_parameters={"rope_type": "default", "rope_theta": 5e5, "partial_rotary_factor": 0.5})
    q, k = torch.randn(2, 1, heads, tokens, head_dim, generator=torch.Generator().manual_seed(0))
    cos, sin = modeling_glm.GlmRotaryEmbedding(config)(q, torch.arange(tokens)[None])
    glm_q, glm_k = modeling_glm.apply_rotary_pos_emb(q, k, cos, sin)
    order = torch.from_numpy(rotary_order(1, head_dim, rotary))

    def half_split(x: torch.Tensor) -> torch.Tensor:
        rot = modeling_llama.apply_rotary_pos_emb(x[..., :rotary], x[..., :rotary], cos, sin)[0]
        return torch.cat([rot, x[..., rotary:]], dim=-1)

    torch.testing.assert_close(half_split(q[..., order]), glm_q[..., order], rtol=0, atol=1e-6)
    torch.testing.assert_close(half_split(k[..., order]), glm_k[..., order], rtol=0, atol=1e-6)
    assert (half_split(q) - glm_q).abs().max() > 1e-2


def test_views_split_the_fused_tensors(chatglm_dir: Path) -> None:
    checkpoint = open_model_checkpoint(chatglm_dir)
    stored = torch.load(chatglm_dir / "pytorch_model.bin", weights_only=True)
    qkv = stored["transformer.encoder.layers.1.self_attention.query_key_value.bias"].numpy()
    q_order = rotary_order(6, 16, 8)
    np.testing.assert_array_equal(checkpoint.get("model.layers.1.self_attn.q_proj.bias"), qkv[:96][q_order])
    np.testing.assert_array_equal(checkpoint.get("model.layers.1.self_attn.v_proj.bias"), qkv[128:])
    gate_up = stored["transformer.encoder.layers.2.mlp.dense_h_to_4h.weight"].numpy()
    np.testing.assert_array_equal(checkpoint.get("model.layers.2.mlp.up_proj.weight"), gate_up[96:])
    assert "transformer.encoder.layers.0.self_attention.query_key_value.weight" not in checkpoint
    assert "transformer.output_layer.weight" not in checkpoint.keys()


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"rmsnorm": False}, ("LayerNorm layers (rmsnorm: false)", "not supported")),
        ({"add_bias_linear": True}, ("add_bias_linear: true",)),
        ({"rope_ratio": -2}, ("rope_ratio=-2", "positive number")),
    ],
)
def test_unsupported_configs_are_one_line(chatglm_dir: Path, tmp_path: Path, change: dict[str, object], fragments: tuple[str, ...]) -> None:
    model = broken_copy(chatglm_dir, tmp_path / "m", change)
    with pytest.raises(AxcError) as error:
        import_hf(model)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize(
    "broken, fragments",
    [
        (dict(drop="transformer.encoder.layers.1.self_attention.query_key_value.weight"),
         ("tensor transformer.encoder.layers.1.self_attention.query_key_value.weight (read as model.layers.1.self_attn.q_proj.weight) missing",)),
        (dict(resize="transformer.encoder.layers.2.mlp.dense_h_to_4h.weight"),
         ("tensor transformer.encoder.layers.2.mlp.dense_h_to_4h.weight has shape [191, 64]", "implies [192, 64]")),
    ],
)
def test_bad_checkpoints_are_one_line_errors(chatglm_dir: Path, tmp_path: Path, broken: dict[str, str], fragments: tuple[str, ...]) -> None:
    model = broken_copy(chatglm_dir, tmp_path / "m", **broken)
    proc = run_tool("axc-translate", "--import-hf", model, "-o", tmp_path / "out.mlir", cwd=tmp_path)
    assert_one_line_error(proc, "axc-translate", *fragments)
    assert not (tmp_path / "out.mlir").exists()
