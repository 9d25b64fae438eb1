"""A family's tensor table: each checkpoint tensor's name, shape from the config and the
config fields that decide it (named in messages); `checkpoint_check` checks the table, the
build's estimate sums it, the layer builders may read only what it lists.

```python
vector("self_attn.q_norm.weight", head_dim, ("head_dim",), when=use_qk_norm)
linear("self_attn.q_proj", q_dim, hidden, ("num_attention_heads", "head_dim", "hidden_size"), bias=attention_bias)
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from axc.frontend.model_config import ModelConfig

Size = Callable[[ModelConfig], int]
Condition = Callable[[ModelConfig], bool]
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
