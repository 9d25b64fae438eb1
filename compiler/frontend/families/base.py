"""What defines a model family: its checkpoint's tensors and its layer's structure.

A `Family` is a declarative table of tensors plus the functions that build `@layer_<i>`
and `@post` from shared blocks (`axc.frontend.families.blocks`). The generic frontend
interprets it: `checkpoint_check` checks the tensors, the build's estimate sums them,
`hf_import` assembles the module and `runtime_files` reads the runtime's names.

```python
Tensor("self_attn.q_norm.weight", lambda c: (c.head_dim,), ("head_dim",))      # a layer vector
linear("self_attn.q_proj", lambda c: c.q_dim, lambda c: c.hidden_size, Q_BECAUSE, bias=qkv_bias)
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from axc.frontend.config import ModelConfig
    from axc.frontend.families.blocks import LayerBuilder, PostBuilder

Size = Callable[["ModelConfig"], int]
Condition = Callable[["ModelConfig"], bool]
QK_NORM_PLACES = ("none", "before_rope", "after_rope")
EMBED = "model.embed_tokens.weight"
FINAL_NORM = "model.norm.weight"
LM_HEAD = "lm_head.weight"
"""Canonical names of the tensors outside the layers (a family with others serves views)."""


def always(config: ModelConfig) -> bool:
    return True


def never(config: ModelConfig) -> bool:
    return False


@dataclass(frozen=True)
class Tensor:
    """One checkpoint tensor: its name (a layer tensor's relative to the layer prefix), its
    shape from the config and the config fields that decide it (named in messages).

    A `linear` names the module (`self_attn.q_proj`): its tensors are `.weight` (or the GPTQ
    `qweight`/`qzeros`/`scales`/`g_idx`) of shape `[out, in]` and, when `bias`, `.bias`."""

    name: str
    shape: Callable[[ModelConfig], tuple[int, ...]]
    because: tuple[str, ...]
    linear: bool = False
    bias: Condition = never
    when: Condition = always


def linear(name: str, out: Size, in_: Size, because: tuple[str, ...], bias: Condition = never) -> Tensor:
    return Tensor(name, lambda c: (out(c), in_(c)), because, linear=True, bias=bias)


def vector(name: str, size: Size, because: tuple[str, ...], when: Condition = always) -> Tensor:
    return Tensor(name, lambda c: (size(c),), because, when=when)


@dataclass(frozen=True)
class Family:
    """One model family (one or more `model_type`s sharing a definition).

    `configure(raw, values)` reads the family's own `config.json` keys into `values` (the
    canonical keys `load_config` collects), before defaults are applied."""

    model_types: tuple[str, ...]
    layer_tensors: tuple[Tensor, ...]
    """Per decoder layer, relative to `layer_prefix`."""
    layer: Callable[[LayerBuilder], None]
    post: Callable[[PostBuilder], None]
    reference: str
    """The transformers class that computes the same model (the tests' reference)."""
    tiny: dict[str, Any]
    """Config keywords of a tiny test model (odd shapes where the family allows them)."""
    attention_bias: bool = False
    """Default of `attention_bias` when `config.json` does not say."""
    qk_norm: str = "none"
    """Where the per-head q/k RMSNorm sits: none, before_rope or after_rope."""
    configure: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    layer_prefix: str = "model.layers.{}."
    tokenizer_types: dict[str, str] = field(default_factory=dict)
    """The runtime's `tokenizer_type` per model_type (default: the model_type)."""

    def __post_init__(self) -> None:
        assert self.qk_norm in QK_NORM_PLACES, self.qk_norm

    def layer_key(self, index: int, name: str) -> str:
        return self.layer_prefix.format(index) + name

    def tokenizer_type(self, model_type: str) -> str:
        return self.tokenizer_types.get(model_type, model_type)
