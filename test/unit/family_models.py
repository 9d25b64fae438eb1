"""Tiny random checkpoints of every family, built offline, and where the family's own
modelling code is not in transformers, the native model that computes the same thing.

`FAMILY_MODELS[name](directory)` writes the checkpoint axc builds and returns it with the
directory of the transformers model that is its reference (the same one for native
families). The `item7-*` entries are the already-covered names, at their released configs'
shape features (tied embeddings, llama3 rope, head ratios, explicit head_dim), scaled down.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import transformers
from tiny_models import family_config

from axc.frontend.families import get_family

LAYERS = 3
BASE = dict(vocab_size=128, num_hidden_layers=LAYERS, max_position_embeddings=256)
FAMILY_BUILDS = {
    "bf16": ("AX650", "bf16"), "s8": ("AX620E", "bf16"), "bf16-fp32": ("AX650", "fp32"),
    "bf16-ax620e": ("AX620E", "bf16"), "s8-ax650": ("AX650", "bf16"),
}
"""Build kind → (chip, hidden-state type); the weight type is the kind's first word. The
last two are the other chip of each weight type (`AXC_FAMILY_BOTH_CHIPS=1`)."""
KV, PREFILL, LASTS = 31, 8, (8, 16)
"""The builds' kv_cache_len, prefill_len and last_kv_cache_len (three prefill groups)."""


def save_random(config: transformers.PretrainedConfig, directory: Path, seed: int = 0) -> Path:
    """A randomly initialised model of `config` (fp32) with weights large enough to matter."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.add_(torch.randn_like(param) * (0.02 if "norm" in name else 0.05))
    model.save_pretrained(directory)
    return directory


def native(make: Callable[[], transformers.PretrainedConfig]) -> Callable[[Path], tuple[Path, Path]]:
    def write(directory: Path) -> tuple[Path, Path]:
        save_random(make(), directory)
        return directory, directory

    return write


def chatglm_reference_config() -> transformers.GlmConfig:
    """The native `GlmForCausalLM` that computes the tiny ChatGLM3 model (families.md §7)."""
    t = get_family("chatglm").tiny
    return transformers.GlmConfig(
        vocab_size=t["padded_vocab_size"], hidden_size=t["hidden_size"], intermediate_size=t["ffn_hidden_size"],
        num_hidden_layers=t["num_layers"], num_attention_heads=t["num_attention_heads"],
        num_key_value_heads=t["multi_query_group_num"], head_dim=t["kv_channels"], rms_norm_eps=t["layernorm_epsilon"],
        max_position_embeddings=t["seq_length"], attention_bias=t["add_qkv_bias"], tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e4 * t["rope_ratio"], "partial_rotary_factor": 0.5},
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )


def write_chatglm(directory: Path) -> tuple[Path, Path]:
    """A ChatGLM3-layout checkpoint (`config.json` with ChatGLM's keys, `pytorch_model.bin`
    with `transformer.*` names, fused qkv and gate/up, the unused `inv_freq`) converted from a
    random `GlmForCausalLM`, which is its reference (exact: families.md §7, §11)."""
    reference = save_random(chatglm_reference_config(), directory / "reference")
    glm = transformers.GlmForCausalLM.from_pretrained(reference, dtype=torch.float32).state_dict()
    t = get_family("chatglm").tiny
    state = {
        "transformer.embedding.word_embeddings.weight": glm["model.embed_tokens.weight"],
        "transformer.rotary_pos_emb.inv_freq": 1.0 / (1e4 ** (torch.arange(0, t["kv_channels"] // 2, 2) / (t["kv_channels"] // 2))),
        "transformer.encoder.final_layernorm.weight": glm["model.norm.weight"],
        "transformer.output_layer.weight": glm["lm_head.weight"],
    }
    for i in range(t["num_layers"]):
        p, s = f"model.layers.{i}.", f"transformer.encoder.layers.{i}."
        for suffix in ("weight", "bias"):
            state[f"{s}self_attention.query_key_value.{suffix}"] = torch.cat([glm[f"{p}self_attn.{x}_proj.{suffix}"] for x in "qkv"])
        state[s + "self_attention.dense.weight"] = glm[p + "self_attn.o_proj.weight"]
        state[s + "mlp.dense_h_to_4h.weight"] = glm[p + "mlp.gate_up_proj.weight"]
        state[s + "mlp.dense_4h_to_h.weight"] = glm[p + "mlp.down_proj.weight"]
        for norm in ("input_layernorm.weight", "post_attention_layernorm.weight"):
            state[s + norm] = glm[p + norm]
    torch.save({k: v.contiguous() for k, v in state.items()}, directory / "pytorch_model.bin")
    raw = {
        "architectures": ["ChatGLMModel"], "model_type": "chatglm", "torch_dtype": "float32",
        "auto_map": {"AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration"},
        **t, "rmsnorm": True, "add_bias_linear": False, "post_layer_norm": True, "original_rope": True,
        "apply_residual_connection_post_layernorm": False, "fp32_residual_connection": False,
        "apply_query_key_layer_scaling": True, "attention_softmax_in_fp32": True, "pad_token_id": 0, "eos_token_id": 2,
    }
    (directory / "config.json").write_text(json.dumps(raw, indent=2))
    return directory, reference


def write_minicpm(directory: Path, tied: bool) -> tuple[Path, Path]:
    """A `minicpm` checkpoint (Llama tensor names; the muP scalars and LongRoPE in its
    config) and its native equivalent, a `LlamaForCausalLM` with the scalars folded into the
    weights (families.md §8). Its original context (16) is shorter than the test's
    sequence, so MiniCPM's static choice (long, from max_position_embeddings) and the
    reference's per-call choice over the whole sequence agree: both use the long table."""
    tiny = dict(get_family("minicpm").tiny, tie_word_embeddings=tied)
    scalars = {key: tiny.pop(key) for key in ("scale_emb", "scale_depth", "dim_model_base")}
    rope = {**tiny.pop("rope_scaling"), "rope_theta": tiny.pop("rope_theta")}
    torch.manual_seed(1)
    source = transformers.LlamaForCausalLM(transformers.LlamaConfig(**tiny, rope_parameters=rope))
    with torch.no_grad():
        for name, param in source.named_parameters():
            param.add_(torch.randn_like(param) * (0.02 if "norm" in name else 0.05))
    stored = {k: v.contiguous() for k, v in source.state_dict().items() if not (tied and k == "lm_head.weight")}
    safetensors.torch.save_file(stored, str(directory / "model.safetensors"), metadata={"format": "pt"})
    raw = {k: v for k, v in source.config.to_dict().items() if k not in ("rope_parameters", "dtype")}
    raw.update(
        model_type="minicpm", architectures=["MiniCPMForCausalLM"], torch_dtype="float32",
        rope_theta=rope["rope_theta"], rope_scaling={k: v for k, v in rope.items() if k != "rope_theta"}, **scalars,
    )
    (directory / "config.json").write_text(json.dumps(raw, indent=2))
    folded = dict(source.state_dict())
    folded["model.embed_tokens.weight"] = folded["model.embed_tokens.weight"] * scalars["scale_emb"]
    residual = scalars["scale_depth"] / math.sqrt(tiny["num_hidden_layers"])
    for key in folded:
        if key.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            folded[key] = folded[key] * residual
    head = stored.get("lm_head.weight", stored["model.embed_tokens.weight"])
    folded["lm_head.weight"] = head * (scalars["dim_model_base"] / tiny["hidden_size"])
    reference = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**tiny, "tie_word_embeddings": False}, rope_parameters=rope))
    reference.load_state_dict(folded)
    reference.save_pretrained(directory / "reference")
    return directory, directory / "reference"


INTERNVL_LM = dict(BASE, hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, head_dim=24, tie_word_embeddings=True, rope_theta=1e6)
"""InternVL2.5-1B / InternVL3-1B's language model is Qwen2.5-0.5B (qwen2, tied); head_dim
24 ≠ hidden / heads here."""


def write_internvl_chat(directory: Path) -> tuple[Path, Path]:
    """The original remote-code layout: `internvl_chat` with a nested `llm_config` and the
    weights under `language_model.`, beside vision-tower and projector tensors (stand-ins
    with InternVL's names); the reference is the language model alone."""
    reference = save_random(transformers.Qwen2Config(**INTERNVL_LM), directory / "reference")
    model = transformers.AutoModelForCausalLM.from_pretrained(reference, dtype=torch.float32)
    tensors = {f"language_model.{k}": v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    generator = torch.Generator().manual_seed(3)
    tensors["vision_model.embeddings.patch_embedding.weight"] = torch.randn(32, 3, 14, 14, generator=generator)
    tensors["vision_model.encoder.layers.0.attn.qkv.weight"] = torch.randn(96, 32, generator=generator)
    tensors["mlp1.1.weight"] = torch.randn(64, 128, generator=generator)
    safetensors.torch.save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    raw = {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat", "torch_dtype": "bfloat16",
        "llm_config": {**model.config.to_dict(), "torch_dtype": "float32"}, "template": "internvl2_5",
        "vision_config": {"model_type": "intern_vit_6b", "hidden_size": 32, "patch_size": 14},
        "downsample_ratio": 0.5, "select_layer": -1,
    }
    (directory / "config.json").write_text(json.dumps(raw, indent=2))
    return directory, reference


def write_internvl_native(directory: Path) -> tuple[Path, Path]:
    """transformers' own `internvl` layout (`InternVLForConditionalGeneration`, saved with
    the language model under `language_model.`); the reference is its language model as a
    Qwen2 model."""
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14)
    config = transformers.InternVLConfig(text_config=transformers.Qwen2Config(**INTERNVL_LM), vision_config=vision, image_token_id=5)
    torch.manual_seed(2)
    model = transformers.InternVLForConditionalGeneration(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.add_(torch.randn_like(param) * (0.02 if "norm" in name else 0.05))
    model.save_pretrained(directory)
    language = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**INTERNVL_LM))
    language.model.load_state_dict(model.model.language_model.state_dict())
    language.lm_head.load_state_dict(model.lm_head.state_dict())
    language.save_pretrained(directory / "reference")
    return directory, directory / "reference"


def llama3_rope(theta: float, factor: float, original: int) -> dict[str, object]:
    return {
        "rope_type": "llama3", "rope_theta": theta, "factor": factor,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": original,
    }


FAMILY_MODELS: dict[str, Callable[[Path], tuple[Path, Path]]] = {
    "chatglm": write_chatglm,
    "minicpm-tied": lambda d: write_minicpm(d, tied=True),
    "minicpm-untied": lambda d: write_minicpm(d, tied=False),
    "internvl-chat": write_internvl_chat,
    "internvl-native": write_internvl_native,
    # Gemma2: head_dim 16 != 48 / 4, windows of 4 on layers 0 and 2, both soft-caps, tied.
    "gemma2": native(lambda: family_config("gemma2")),
    # Phi-2: partial rotary 0.4 (6 of 16), parallel block, LayerNorms and lm_head with bias.
    "phi": native(lambda: family_config("phi")),
    # Phi-3: window 5 on every layer; longrope with an original context of 16 < kv_cache_len,
    # so the long table and its cos/sin factor are the ones in use.
    "phi3": native(lambda: family_config("phi3", original_max_position_embeddings=16)),
    # DeepSeek-R1-Distill-Qwen-1.5B: qwen2, 12:2 heads, untied, theta 1e4.
    "item7-deepseek-r1-distill-qwen": native(lambda: transformers.Qwen2Config(
        **BASE, hidden_size=96, intermediate_size=160, num_attention_heads=6, num_key_value_heads=1,
        tie_word_embeddings=False, rope_theta=1e4)),
    # Qwen2.5-0.5B: qwen2, 14:2 heads of 64, tied, theta 1e6.
    "item7-qwen2.5": native(lambda: transformers.Qwen2Config(
        **BASE, hidden_size=112, intermediate_size=192, num_attention_heads=7, num_key_value_heads=1,
        tie_word_embeddings=True, rope_theta=1e6)),
    # Llama-3.2-1B: 32:8 heads, tied, llama3 rope (factor 32, original 8192 -> 64 here).
    "item7-llama3.2": native(lambda: transformers.LlamaConfig(
        **BASE, hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=1,
        tie_word_embeddings=True, rope_parameters=llama3_rope(5e5, 32.0, 64))),
    # SmolLM2-135M: llama, 9:3 heads, tied, theta 1e5.
    "item7-smollm2": native(lambda: transformers.LlamaConfig(
        **BASE, hidden_size=72, intermediate_size=128, num_attention_heads=9, num_key_value_heads=3,
        tie_word_embeddings=True, rope_theta=1e5)),
    # TinyLlama-1.1B: llama, 32:4 heads, untied, theta 1e4.
    "item7-tinyllama": native(lambda: transformers.LlamaConfig(
        **BASE, hidden_size=64, intermediate_size=160, num_attention_heads=8, num_key_value_heads=1,
        tie_word_embeddings=False, rope_theta=1e4)),
    # OpenBuddy (Llama-3.1 based): llama3 rope, untied; head_dim set apart from hidden / heads.
    "item7-openbuddy": native(lambda: transformers.LlamaConfig(
        **BASE, hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, head_dim=24,
        tie_word_embeddings=False, rope_parameters=llama3_rope(5e5, 8.0, 64))),
}


CONVERTED: dict[str, Callable[[Path], tuple[Path, Path]]] = {
    "chatglm": write_chatglm,
    "minicpm": FAMILY_MODELS["minicpm-tied"],
}
"""Registered families whose tiny model is a converted layout (`tiny_models.build_tiny_model`)."""


def reference_logits(model_dir: Path, token_ids: list[int], dtype: torch.dtype = torch.float32) -> "np.ndarray":
    """transformers' forward over the whole sequence in `dtype`: `[T, vocab]` fp32 numpy."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits[0].float().numpy()
