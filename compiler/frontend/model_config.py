"""The model hyper-parameters the compiler needs: one normalised view of a checkpoint's
configuration (`axc.frontend.config.load_config` reads it from `config.json`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from axc.checkpoints.gptq import QuantConfig


@dataclass(frozen=True)
class RopeScaling:
    """Rotary-embedding frequency scaling (`rope_scaling` / `rope_parameters`)."""

    kind: str
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 0
    alpha: float | None = None
    """HunYuan's NTK alpha (`type: dynamic`), which its family folds into `rope_theta`."""
    short_factor: tuple[float, ...] = ()
    long_factor: tuple[float, ...] = ()
    """`longrope`: the per-frequency divisor tables (`su`/`yarn` in older Phi-3 configs)."""
    mscale: float = 1.0
    """`longrope`: the factor on cos and sin (`attention_factor`, else from the context ratio)."""
    long: bool = False
    """`longrope`: the build uses the long table (its context exceeds the original one)."""


@dataclass(frozen=True)
class ModelConfig:
    """The model hyper-parameters the compiler needs, whatever file spelling they came from."""

    model_name: str
    model_type: str
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    hidden_size: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rope_theta: float
    max_position_embeddings: int
    rope_partial_factor: float
    rms_norm_eps: float
    norm_type: str
    hidden_act: str
    tie_word_embeddings: bool
    attention_bias: bool
    mlp_bias: bool
    dtype: str
    rope_scaling: RopeScaling
    quant: QuantConfig | None
    bos_token_id: int | None
    eos_token_id: int | list[int] | None
    use_qk_norm: bool = False
    """An RMSNorm over each head of q and k (Qwen3, HunYuan)."""
    qk_norm_after_rope: bool = False
    """That norm follows RoPE (HunYuan) instead of preceding it (Qwen3)."""
    sliding_windows: tuple[int, ...] = ()
    """Per layer, the sliding window enforced inside the layer (0: full attention)."""
    attention_scale: float | None = None
    """The score scale when it is not 1/√head_dim (Gemma2's `query_pre_attn_scalar`)."""
    attention_softcap: float = 0.0
    final_softcap: float = 0.0
    """tanh soft-caps of the attention scores and of the logits (Gemma2; 0: none)."""
    embedding_scale: float = 1.0
    """The factor on the embedding rows the runtime looks up (Gemma2's √hidden)."""
    residual_scale: float = 1.0
    """The factor on each residual branch (MiniCPM's `scale_depth / √num_layers`)."""
    logit_scale: float = 1.0
    """The factor on the final hidden state before the lm_head (MiniCPM's `dim_model_base / hidden`)."""
    lm_head_from_embedding: bool = False
    """The lm_head is the stored (unscaled) embedding table of a tied model whose family
    serves it untied, because its embedding rows are scaled (Gemma2)."""
    wrapper: str = ""
    """The vision-language `model_type` whose language model this is (`internvl_chat`,
    `internvl`: weights under `language_model.`; the vision tower is built separately)."""

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_dim

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.rope_partial_factor)

    def format_block(self) -> str:
        """A `Config(...)` block, one `key=value,` per line, like the vendor tool's log.

        It prints only what the build uses: GPTQ's `desc_act` and `sym` are left out because
        the loader reads act order from `g_idx` and zero points from `qzeros` whatever they say.
        """
        fields: list[tuple[str, Any]] = [
            (name, getattr(self, name))
            for name in (
                "model_name",
                "model_type",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "hidden_size",
                "head_dim",
                "intermediate_size",
                "vocab_size",
                "rope_theta",
                "max_position_embeddings",
                "rope_partial_factor",
                "rms_norm_eps",
                "norm_type",
                "hidden_act",
                "tie_word_embeddings",
                "use_qk_norm",
                "qk_norm_after_rope",
            )
        ]
        if self.quant is None:
            fields.append(("quant_method", None))
        else:
            q = self.quant
            fields += [
                ("quant_method", q.method),
                ("quant_bits", q.bits),
                ("quant_group_size", q.group_size),
                ("quant_format", q.checkpoint_format),
            ]
        r = self.rope_scaling
        fields += [
            ("rope_scaling_type", r.kind),
            ("rope_scaling_factor", r.factor),
            ("rope_scaling_low_freq_factor", r.low_freq_factor),
            ("rope_scaling_high_freq_factor", r.high_freq_factor),
            ("rope_scaling_original_max_position_embeddings", r.original_max_position_embeddings),
            ("rope_scaling_alpha", r.alpha),
        ]
        lines = ["Config("] + [f"    {key}={value!r}," for key, value in fields] + [")"]
        return "\n".join(lines)
