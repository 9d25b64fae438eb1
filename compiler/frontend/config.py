"""Model configuration: one normalised view of a Hugging Face `config.json`.

Accepts the 2024–2025 hub spelling (top-level `rope_theta`, `rope_scaling`, `torch_dtype`),
the transformers 5.x spelling (`rope_parameters`, `dtype`) and the vendor's
`pulsar2 llm_build --model_config` JSON, whose values override or complete `config.json`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from axc.checkpoints.gptq import read_quant_config
from axc.errors import AxcError
from axc.frontend.families import FAMILIES, get_family
from axc.frontend.model_config import ModelConfig, QuantConfig, RopeScaling
from axc.jsonio import read_json

__all__ = ["ModelConfig", "QuantConfig", "RopeScaling", "SUPPORTED_MODEL_TYPES", "choose_longrope", "load_config"]

SUPPORTED_MODEL_TYPES = tuple(FAMILIES)
ROPE_KINDS = ("default", "linear", "llama3", "dynamic", "yarn", "longrope")

# Vendor --model_config key -> canonical key.
VENDOR_KEYS = {
    "model_type": "model_type",
    "num_hidden_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads",
    "num_key_value_heads": "num_key_value_heads",
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "rope_theta_base": "rope_theta",
    "norm_eps": "rms_norm_eps",
    "max_position_embedings": "max_position_embeddings",
    "max_position_embeddings": "max_position_embeddings",
    "rope_partial_factor": "rope_partial_factor",
    "norm_type": "norm_type",
    "hidden_act": "hidden_act",
    "tie_word_embeddings": "tie_word_embeddings",
    "head_dim": "head_dim",
}

REQUIRED_KEYS = (
    "model_type",
    "num_hidden_layers",
    "num_attention_heads",
    "hidden_size",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)
POSITIVE_INT_KEYS = (
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_size",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)


def _rope_scaling(raw: dict[str, Any], where: Path) -> RopeScaling:
    params = raw.get("rope_scaling") or raw.get("rope_parameters") or {}
    if not isinstance(params, dict):
        raise AxcError(f"rope_scaling in {where} must be an object or null; fix the config")
    kind = params.get("rope_type", params.get("type", "default")) or "default"
    if kind in ("su", "yarn") and "short_factor" in params:
        kind = "longrope"  # Phi-3's older spellings, as transformers reads them
    if kind not in ROPE_KINDS:
        raise AxcError(
            f"unsupported rope scaling type {kind!r} in {where}; supported: {', '.join(ROPE_KINDS)}"
        )
    try:
        fields: dict[str, Any] = dict(
            kind=kind,
            factor=float(params.get("factor", 1.0)),
            low_freq_factor=float(params.get("low_freq_factor", 1.0)),
            high_freq_factor=float(params.get("high_freq_factor", 4.0)),
            original_max_position_embeddings=int(params.get("original_max_position_embeddings", 0) or 0),
            alpha=None if params.get("alpha") is None else float(params["alpha"]),
        )
        if kind == "longrope":
            fields.update(_longrope(raw, params, where))
        return RopeScaling(**fields)
    except (TypeError, ValueError):
        raise AxcError(f"rope scaling parameters in {where} must be numbers: {params}; fix the config") from None


def _longrope(raw: dict[str, Any], params: dict[str, Any], where: Path) -> dict[str, Any]:
    """A longrope's tables, original context (the top-level key first, as transformers
    reads Phi-3) and `attention_factor`: given, else √(1 + ln s / ln L) for the context
    ratio `s` (`factor`, else max / original positions) over the original length L."""
    original = int(raw.get("original_max_position_embeddings") or params.get("original_max_position_embeddings") or 0)
    original = original or int(raw.get("max_position_embeddings") or 0)
    short, long = (tuple(float(f) for f in params.get(key) or ()) for key in ("short_factor", "long_factor"))
    if not short or len(short) != len(long):
        raise AxcError(
            f"longrope in {where} needs short_factor and long_factor lists of one length "
            f"(got {len(short)} and {len(long)}); fix the config"
        )
    mscale = params.get("attention_factor")
    if mscale is None:
        factor = params.get("factor")
        ratio = float(factor) if factor is not None else float(raw.get("max_position_embeddings") or original) / max(original, 1)
        mscale = 1.0 if ratio <= 1.0 or original <= 1 else math.sqrt(1 + math.log(ratio) / math.log(original))
    return dict(original_max_position_embeddings=original, short_factor=short, long_factor=long, mscale=float(mscale))


VISION_LANGUAGE = {"internvl_chat": "llm_config", "internvl": "text_config"}
"""Vision-language `model_type`s whose language model axc builds → the key of its config."""


def _language_model(raw: dict[str, Any], where: Path) -> tuple[str, dict[str, Any]]:
    """(the vision-language wrapper's `model_type` or "", the language model's config): the
    nested config, completed by the wrapper's dtype and token ids it does not set."""
    wrapper = raw.get("model_type")
    if not isinstance(wrapper, str) or wrapper not in VISION_LANGUAGE:
        return "", raw
    key = VISION_LANGUAGE[wrapper]
    inner = raw.get(key)
    if not isinstance(inner, dict) or not isinstance(inner.get("model_type"), str):
        raise AxcError(f"{where}: a {wrapper} config needs a {key} object with the language model's model_type; fix the config")
    shared = {k: raw[k] for k in ("torch_dtype", "dtype", "bos_token_id", "eos_token_id", "tie_word_embeddings") if k in raw}
    return wrapper, {**shared, **inner}


def choose_longrope(config: ModelConfig, context_len: int) -> ModelConfig:
    """The config with the longrope table for a context of `context_len` positions: long
    when it exceeds the original context (transformers' rule, decided once per build)."""
    scaling = config.rope_scaling
    if scaling.kind != "longrope":
        return config
    original = scaling.original_max_position_embeddings or config.max_position_embeddings
    return dataclasses.replace(config, rope_scaling=dataclasses.replace(scaling, long=context_len > original))


def _hf_values(raw: dict[str, Any]) -> dict[str, Any]:
    """The canonical keys found in a Hugging Face config.json (either spelling)."""
    rope_parameters = raw.get("rope_parameters")
    params = rope_parameters if isinstance(rope_parameters, dict) else {}
    values = {
        key: raw[key]
        for key in (
            "model_type",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "hidden_size",
            "head_dim",
            "intermediate_size",
            "vocab_size",
            "max_position_embeddings",
            "rms_norm_eps",
            "hidden_act",
            "tie_word_embeddings",
            "attention_bias",
            "mlp_bias",
            "bos_token_id",
            "eos_token_id",
        )
        if raw.get(key) is not None
    }
    for key, sources in (
        ("rope_theta", (raw.get("rope_theta"), params.get("rope_theta"))),
        ("rope_partial_factor", (raw.get("partial_rotary_factor"), params.get("partial_rotary_factor"))),
        ("dtype", (raw.get("dtype"), raw.get("torch_dtype"))),
    ):
        found = next((value for value in sources if value is not None), None)
        if found is not None:
            values[key] = found
    return values


def load_config(
    model_dir: str | Path, model_config: str | Path | None = None, context_len: int | None = None
) -> ModelConfig:
    """Read `model_dir/config.json`, completed/overridden by a vendor `--model_config` JSON;
    a longrope takes its table for `context_len` positions (the build's kv_cache_len;
    without one, the short table, as transformers initialises it)."""
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    raw: dict[str, Any] = {}
    wrapper = ""
    values: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    files: list[Path] = []
    if config_path.is_file():
        raw = read_json(config_path, "model config")
        wrapper, raw = _language_model(raw, config_path)
        values = _hf_values(raw)
        own = FAMILIES.get(raw["model_type"]) if isinstance(raw.get("model_type"), str) else None
        if own is not None and (read_own := own().config_keys) is not None:
            values.update(read_own(raw))
        origin = dict.fromkeys(values, config_path)
        files.append(config_path)
    elif model_config is None:
        raise AxcError(
            f"no config.json in {model_dir}; pass a Hugging Face model directory or a --model_config JSON"
        )
    if model_config is not None:
        vendor_path = Path(model_config)
        if not vendor_path.is_file():
            raise AxcError(f"model config {vendor_path} does not exist; check the --model_config path")
        vendor = read_json(vendor_path, "model config")
        files.append(vendor_path)
        for key, canonical in VENDOR_KEYS.items():
            if vendor.get(key) is not None:
                values[canonical] = vendor[key]
                origin[canonical] = vendor_path
    sources = " + ".join(str(path) for path in files)

    for key in REQUIRED_KEYS:
        if key not in values:
            raise AxcError(f"missing required key {key!r} in {sources}; add it to the model config")
    model_type = values["model_type"]
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise AxcError(
            f"unsupported model_type {model_type!r} in {origin['model_type']}; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    family = get_family(model_type)
    norm_type = values.get("norm_type", family.norm_type)
    if norm_type != family.norm_type:
        raise AxcError(
            f"norm_type={norm_type!r} in {origin['norm_type']} is not supported for model_type {model_type!r} "
            f"(it builds {family.norm_type}); remove norm_type or set it to {family.norm_type}"
        )
    values.setdefault("num_key_value_heads", values["num_attention_heads"])
    for key in POSITIVE_INT_KEYS:
        value = values.get(key)
        if key in values and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise AxcError(f"{key}={value!r} in {origin[key]} must be a positive integer; fix the model config")
    hidden, heads, kv_heads = values["hidden_size"], values["num_attention_heads"], values["num_key_value_heads"]
    if "head_dim" not in values:
        if hidden % heads:
            raise AxcError(
                f"hidden_size={hidden} is not divisible by num_attention_heads={heads} in {sources} "
                "and head_dim is not set; add head_dim to the model config"
            )
        values["head_dim"] = hidden // heads
    if heads % kv_heads:
        raise AxcError(
            f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads} in {sources}; "
            "fix the model config"
        )
    for key, default in (("rope_theta", 10000.0), ("rms_norm_eps", 1e-6), ("rope_partial_factor", 1.0)):
        value = values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise AxcError(f"{key}={value!r} in {origin.get(key, sources)} must be a positive number")
        values[key] = float(value)
    if values["rope_partial_factor"] > 1.0:
        raise AxcError(
            f"rope_partial_factor={values['rope_partial_factor']} in {origin['rope_partial_factor']} "
            "must be at most 1"
        )
    values["model_name"] = model_dir.resolve().name
    values["rope_scaling"] = _rope_scaling(raw, config_path)
    values["use_qk_norm"] = family.qk_norm != "none"
    if family.configure is not None:
        family.configure(raw, values)

    config = ModelConfig(
        model_name=values["model_name"],
        model_type=model_type,
        num_hidden_layers=values["num_hidden_layers"],
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        hidden_size=hidden,
        head_dim=values["head_dim"],
        intermediate_size=values["intermediate_size"],
        vocab_size=values["vocab_size"],
        rope_theta=values["rope_theta"],
        max_position_embeddings=values["max_position_embeddings"],
        rope_partial_factor=values["rope_partial_factor"],
        rms_norm_eps=values["rms_norm_eps"],
        norm_type=norm_type,
        hidden_act=str(values.get("hidden_act", "silu")),
        tie_word_embeddings=bool(values.get("tie_word_embeddings", False)),
        attention_bias=bool(values.get("attention_bias", family.attention_bias)),
        mlp_bias=bool(values.get("mlp_bias", False)),
        dtype=str(values.get("dtype", "float32")),
        rope_scaling=values["rope_scaling"],
        quant=read_quant_config(raw, model_dir, config_path),
        bos_token_id=values.get("bos_token_id"),
        eos_token_id=values.get("eos_token_id"),
        use_qk_norm=bool(values["use_qk_norm"]),
        qk_norm_after_rope=family.qk_norm == "after_rope",
        sliding_windows=tuple(values.get("sliding_windows", ())),
        attention_scale=values.get("attention_scale"),
        attention_softcap=float(values.get("attention_softcap", 0.0)),
        final_softcap=float(values.get("final_softcap", 0.0)),
        embedding_scale=float(values.get("embedding_scale", 1.0)),
        residual_scale=float(values.get("residual_scale", 1.0)),
        logit_scale=float(values.get("logit_scale", 1.0)),
        lm_head_from_embedding=bool(values.get("lm_head_from_embedding", False)),
        wrapper=wrapper,
    )
    scaling = config.rope_scaling
    if scaling.kind == "longrope" and len(scaling.short_factor) != config.rotary_dim // 2:
        raise AxcError(
            f"longrope short_factor/long_factor in {config_path} have {len(scaling.short_factor)} entries but "
            f"rotary_dim {config.rotary_dim} needs {config.rotary_dim // 2} (one per frequency); fix the config"
        )
    return choose_longrope(config, (context_len or 0) if family.longrope_from_context else config.max_position_embeddings)
