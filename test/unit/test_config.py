"""Tests for axc.frontend.config: config.json spellings, the vendor schema, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import transformers

from axc.errors import AxcError
from axc.frontend.config import SUPPORTED_MODEL_TYPES, ModelConfig, QuantConfig, RopeScaling, load_config

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gptq"

TINY = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
)


def save_hf_config(directory: Path, config: transformers.PretrainedConfig) -> Path:
    config.save_pretrained(directory)
    return directory


def read(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "config.json").read_text())


def write(directory: Path, data: dict[str, Any], name: str = "config.json") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(data))
    return directory


def to_old_spelling(data: dict[str, Any]) -> dict[str, Any]:
    """Rewrite transformers-5 output the way 2024-2025 hub files spell it."""
    data = dict(data)
    params = dict(data.pop("rope_parameters"))
    data["rope_theta"] = params.pop("rope_theta")
    if "partial_rotary_factor" in params:
        data["partial_rotary_factor"] = params.pop("partial_rotary_factor")
    kind = params.pop("rope_type")
    data["rope_scaling"] = None if kind == "default" else {"type": kind, **params}
    if "dtype" in data:
        data["torch_dtype"] = data.pop("dtype")
    return data


def one_line_error(call: Any, *fragments: str) -> str:
    with pytest.raises(AxcError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_qwen2_transformers5_spelling(tmp_path: Path) -> None:
    directory = save_hf_config(tmp_path / "tiny-qwen2", transformers.Qwen2Config(**TINY, rope_theta=1e6))
    assert "rope_parameters" in read(directory) and "rope_theta" not in read(directory)
    config = load_config(directory)
    assert config.model_name == "tiny-qwen2"
    assert config.model_type == "qwen2"
    assert (config.hidden_size, config.head_dim, config.kv_dim, config.rotary_dim) == (32, 8, 16, 8)
    assert (config.num_attention_heads, config.num_key_value_heads, config.intermediate_size) == (4, 2, 48)
    assert config.rope_theta == 1e6 and config.rope_scaling == RopeScaling("default")
    assert config.attention_bias and not config.mlp_bias
    assert config.quant is None
    assert config.norm_type == "rms_norm" and config.hidden_act == "silu"


def test_old_spelling_equals_new_spelling(tmp_path: Path) -> None:
    rope = dict(
        rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=32
    )
    hf = transformers.LlamaConfig(**TINY, rope_scaling=rope, partial_rotary_factor=0.5, dtype="bfloat16")
    new = save_hf_config(tmp_path / "m", hf)
    old = write(tmp_path / "old" / "m", to_old_spelling(read(new)))
    assert "rope_parameters" not in read(old) and read(old)["torch_dtype"] == "bfloat16"
    assert load_config(old) == load_config(new)
    config = load_config(new)
    assert config.rope_scaling == RopeScaling("llama3", 8.0, 1.0, 4.0, 32)
    assert config.dtype == "bfloat16"
    assert config.rope_partial_factor == 0.5 and config.rotary_dim == 4
    assert not config.attention_bias


def test_rope_scaling_rope_type_key_and_dtype_default(tmp_path: Path) -> None:
    data = to_old_spelling(read(save_hf_config(tmp_path / "m", transformers.LlamaConfig(**TINY))))
    data["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
    assert "torch_dtype" not in data and "dtype" not in data
    config = load_config(write(tmp_path / "m", data))
    assert config.rope_scaling == RopeScaling("linear", factor=2.0)
    assert config.dtype == "float32"


def test_defaults_head_dim_and_kv_heads(tmp_path: Path) -> None:
    data = {k: v for k, v in TINY.items() if k != "num_key_value_heads"} | {"model_type": "llama"}
    config = load_config(write(tmp_path / "m", data))
    assert config.num_key_value_heads == 4 and config.head_dim == 8
    assert config.rope_theta == 10000.0 and config.tie_word_embeddings is False


VENDOR = {
    "model_type": "qwen2",
    "num_hidden_layers": 3,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "hidden_size": 64,
    "intermediate_size": 96,
    "vocab_size": 100,
    "rope_theta_base": 500000.0,
    "norm_eps": 1e-5,
    "max_position_embedings": 128,
    "rope_partial_factor": 0.5,
    "norm_type": "rms_norm",
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "head_dim": 16,
}


@pytest.mark.parametrize("norm_type", ["layer_norm", "LayerNorm"])
def test_vendor_norm_type_other_than_rms_norm_is_refused(tmp_path: Path, norm_type: str) -> None:
    vendor = write(tmp_path, {**VENDOR, "norm_type": norm_type}, "vendor.json") / "vendor.json"
    (tmp_path / "no-config").mkdir()
    message = one_line_error(lambda: load_config(tmp_path / "no-config", vendor), f"norm_type={norm_type!r}", "vendor.json", "rms_norm")
    assert "not supported" in message


def test_vendor_model_config_alone(tmp_path: Path) -> None:
    vendor = write(tmp_path, VENDOR, "vendor.json") / "vendor.json"
    (tmp_path / "no-config").mkdir()
    config = load_config(tmp_path / "no-config", vendor)
    assert config.model_name == "no-config"
    assert (config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads) == (3, 8, 2)
    assert (config.hidden_size, config.head_dim, config.intermediate_size, config.vocab_size) == (64, 16, 96, 100)
    assert config.rope_theta == 500000.0 and config.rms_norm_eps == 1e-5
    assert config.max_position_embeddings == 128 and config.rotary_dim == 8
    assert config.tie_word_embeddings and config.attention_bias


def test_vendor_model_config_overrides_config_json(tmp_path: Path) -> None:
    directory = save_hf_config(tmp_path / "m", transformers.LlamaConfig(**TINY))
    vendor = write(tmp_path, {"rope_theta_base": 1234.0, "max_position_embedings": 32, "norm_eps": 1e-3}, "v.json")
    config = load_config(directory, vendor / "v.json")
    assert (config.rope_theta, config.max_position_embeddings, config.rms_norm_eps) == (1234.0, 32, 1e-3)
    assert config.hidden_size == 32 and config.model_type == "llama"


EXPECTED_BLOCK = """Config(
    model_name='qwen2-tiny-gptq-int4-actorder',
    model_type='qwen2',
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    hidden_size=256,
    head_dim=64,
    intermediate_size=512,
    vocab_size=512,
    rope_theta=1000000.0,
    max_position_embeddings=256,
    rope_partial_factor=1.0,
    rms_norm_eps=1e-06,
    norm_type='rms_norm',
    hidden_act='silu',
    tie_word_embeddings=True,
    use_qk_norm=False,
    qk_norm_after_rope=False,
    quant_method='gptq',
    quant_bits=4,
    quant_group_size=128,
    quant_format='gptq',
    rope_scaling_type='default',
    rope_scaling_factor=1.0,
    rope_scaling_low_freq_factor=1.0,
    rope_scaling_high_freq_factor=4.0,
    rope_scaling_original_max_position_embeddings=0,
    rope_scaling_alpha=None,
)"""


def test_format_block() -> None:
    assert load_config(FIXTURES / "qwen2-tiny-gptq-int4-actorder").format_block() == EXPECTED_BLOCK
    block = load_config(FIXTURES / "llama-tiny-fp").format_block().splitlines()
    assert block[0] == "Config(" and block[-1] == ")"
    assert "    quant_method=None," in block and not any(line.startswith("    quant_bits") for line in block)
    assert all(line.endswith(",") for line in block[1:-1])


FIXTURE_CONFIGS = {
    "qwen2-tiny-fp": (1e6, True, True, None),
    "llama-tiny-fp": (1e4, False, False, None),
    "qwen2-tiny-gptq-int4": (1e6, True, True, QuantConfig("gptq", 4, 128, False, True, "gptq")),
    "qwen2-tiny-gptq-int8": (1e6, True, True, QuantConfig("gptq", 8, 128, False, True, "gptq")),
    "qwen2-tiny-gptq-int4-actorder": (1e6, True, True, QuantConfig("gptq", 4, 128, True, True, "gptq")),
    "llama-tiny-gptq-int4": (1e4, False, False, QuantConfig("gptq", 4, 128, False, True, "gptq")),
}


@pytest.mark.parametrize("name", FIXTURE_CONFIGS)
def test_gptq_fixture_configs(name: str) -> None:
    theta, tied, bias, quant = FIXTURE_CONFIGS[name]
    config = load_config(FIXTURES / name)
    assert config.model_type == name.split("-")[0]
    assert (config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads) == (2, 4, 2)
    assert (config.hidden_size, config.head_dim, config.intermediate_size, config.vocab_size) == (256, 64, 512, 512)
    assert (config.max_position_embeddings, config.rms_norm_eps, config.dtype) == (256, 1e-6, "float16")
    assert (config.rope_theta, config.tie_word_embeddings, config.attention_bias) == (theta, tied, bias)
    assert (config.bos_token_id, config.eos_token_id) == (1, 2)
    assert config.quant == quant


def test_quantize_config_json_beside_config(tmp_path: Path) -> None:
    data = read(FIXTURES / "qwen2-tiny-gptq-int4")
    quant = data.pop("quantization_config")
    directory = write(tmp_path / "m", data)
    assert load_config(directory).quant is None
    write(directory, {"bits": 4, "group_size": -1, "desc_act": False, "sym": False, "format": "gptq_v2"},
          "quantize_config.json")
    assert load_config(directory).quant == QuantConfig("gptq", 4, -1, False, False, "gptq_v2")
    write(directory, quant | {"checkpoint_format": None, "format": None}, "quantize_config.json")
    assert load_config(directory).quant == QuantConfig("gptq", 4, 128, False, True, "gptq")


def tiny(tmp_path: Path, **changes: Any) -> Path:
    data = {**TINY, "model_type": "llama", **changes}
    return write(tmp_path / "m", {k: v for k, v in data.items() if v is not None})


def test_error_missing_config_json(tmp_path: Path) -> None:
    one_line_error(lambda: load_config(tmp_path), "no config.json in", str(tmp_path), "--model_config")


def test_error_malformed_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{\n  "model_type": "llama",\n  "hidden_size": 32,,\n}')
    one_line_error(lambda: load_config(tmp_path), "malformed JSON", str(tmp_path / "config.json"), "line 3 column")


def test_error_malformed_vendor_json(tmp_path: Path) -> None:
    (tmp_path / "v.json").write_text("{oops")
    one_line_error(lambda: load_config(tmp_path, tmp_path / "v.json"), "malformed JSON", "v.json", "line 1 column 2")


def test_error_missing_required_key(tmp_path: Path) -> None:
    one_line_error(lambda: load_config(tiny(tmp_path, vocab_size=None)), "missing required key 'vocab_size'",
                   str(tmp_path / "m" / "config.json"))


def test_error_unknown_model_type(tmp_path: Path) -> None:
    message = one_line_error(lambda: load_config(tiny(tmp_path, model_type="mamba")), "unsupported model_type 'mamba'")
    assert all(kind in message for kind in SUPPORTED_MODEL_TYPES)


@pytest.mark.parametrize("key, value", [("hidden_size", 0), ("num_hidden_layers", -1), ("vocab_size", "64"),
                                        ("intermediate_size", True)])
def test_error_non_positive_size(tmp_path: Path, key: str, value: object) -> None:
    one_line_error(lambda: load_config(tiny(tmp_path, **{key: value})), f"{key}=", "must be a positive integer")


def test_error_heads_do_not_divide_hidden(tmp_path: Path) -> None:
    one_line_error(lambda: load_config(tiny(tmp_path, num_attention_heads=3, num_key_value_heads=1)),
                   "hidden_size=32 is not divisible by num_attention_heads=3", "head_dim")
    assert load_config(tiny(tmp_path, num_attention_heads=3, num_key_value_heads=1, head_dim=10)).head_dim == 10


def test_error_heads_not_multiple_of_kv_heads(tmp_path: Path) -> None:
    one_line_error(lambda: load_config(tiny(tmp_path, num_key_value_heads=3)),
                   "num_attention_heads=4 is not a multiple of num_key_value_heads=3")


def test_error_unsupported_rope_and_quant(tmp_path: Path) -> None:
    one_line_error(lambda: load_config(tiny(tmp_path, rope_scaling={"type": "mrope"})),
                   "unsupported rope scaling type 'mrope'", "llama3")
    one_line_error(lambda: load_config(tiny(tmp_path, quantization_config={"quant_method": "awq", "bits": 4})),
                   "unsupported quantization method 'awq'", "gptq")


def test_model_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(tiny(tmp_path))
    assert isinstance(config, ModelConfig)
    with pytest.raises(AttributeError):
        config.hidden_size = 1  # type: ignore[misc]
