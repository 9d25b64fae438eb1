"""What defines a model family: its checkpoint's tensors (`tensors.Tensor`) and its layer's
structure (builders made of `blocks`).

The generic frontend interprets a `Family`: `checkpoint_check` checks its tensor table,
the build's estimate sums it, `hf_import` assembles `@embed`, `@layer_<i>` and `@post`
from `layer` / `post`, and `runtime_files` reads the runtime's names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from axc.frontend.families.blocks import Builder
from axc.frontend.families.tensors import Tensor, View
from axc.frontend.model_config import ModelConfig

QK_NORM_PLACES = ("none", "before_rope", "after_rope")


@dataclass(frozen=True)
class Family:
    """One model family (one or more `model_type`s sharing a definition).

    `configure(raw, values)` reads the family's own `config.json` keys into `values` (the
    canonical keys `load_config` collects), before defaults are applied."""

    model_types: tuple[str, ...]
    layer_tensors: tuple[Tensor, ...]
    """Per decoder layer, relative to `layer_prefix`."""
    layer: Callable[[Builder], None]
    post: Callable[[Builder], None]
    reference: str
    """The transformers class that computes the same model (the tests' reference)."""
    tiny: dict[str, Any]
    """Config keywords of a tiny test model (odd shapes where the family allows them)."""
    attention_bias: bool = False
    """Default of `attention_bias` when `config.json` does not say."""
    qk_norm: str = "none"
    """Where the per-head q/k RMSNorm sits: none, before_rope or after_rope."""
    configure: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    norm_type: str = "rms_norm"
    """The norm its layers build (`rms_norm`, `layer_norm`); a vendor `--model_config` naming
    another is refused."""
    config_keys: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """The canonical keys a family spells its own way in `config.json` (ChatGLM's
    `num_layers`, ...), read before the checks; they override the Hugging Face spelling."""
    layer_prefix: str = "model.layers.{}."
    stored_layer_prefix: str | None = None
    """Where the checkpoint keeps layer N when views serve it under `layer_prefix` (ChatGLM's
    `transformer.encoder.layers.{}.`)."""
    views: Callable[[ModelConfig], dict[str, View]] | None = None
    """Virtual tensors computed from the stored ones (splits, folds, renames; served by
    `axc.frontend.views`); the stored tensors they replace are hidden from the checkpoint."""
    longrope_from_context: bool = True
    """A longrope's table follows the build's context (Phi-3, as transformers picks it per
    call), or `max_position_embeddings` once (MiniCPM's static choice)."""
    post_tensors: tuple[Tensor, ...] = ()
    """Tensors outside the layers beyond the embedding, final norm and lm_head (biases)."""
    compute_type: str | None = None
    """The activation type between ops in the layers and `@post` of bf16/fp16-weight builds
    where the family needs a wider one than the hidden states (the runtime's tensors keep
    `--hidden_state_type`; quantized weights err more than bf16 activations do)."""
    tokenizer_types: dict[str, str] = field(default_factory=dict)
    """The runtime's `tokenizer_type` per model_type (default: the model_type)."""

    def __post_init__(self) -> None:
        assert self.qk_norm in QK_NORM_PLACES, self.qk_norm

    def layer_key(self, index: int, name: str) -> str:
        return self.layer_prefix.format(index) + name

    def tokenizer_type(self, model_type: str) -> str:
        return self.tokenizer_types.get(model_type, model_type)
