"""A family's tensor table: each checkpoint tensor's name, shape from the config and the
config fields that decide it (named in messages); `checkpoint_check` checks the table, the
build's estimate sums it, the layer builders may read only what it lists.

```python
vector("self_attn.q_norm.weight", head_dim, ("head_dim",), when=use_qk_norm)
linear("self_attn.q_proj", q_dim, hidden, ("num_attention_heads", "head_dim", "hidden_size"), bias=attention_bias)
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class View:
    """A virtual checkpoint tensor a family computes from stored ones: `compute(*sources)`
    (each source read as fp32), stored in the first source's dtype (rounded to nearest
    even) unless `dtype` is given. `axc.frontend.views` serves them under canonical names:

    ```python
    {"model.layers.0.self_attn.q_proj.weight": rows("model.layers.0.self_attn.qkv_proj.weight", 0, 64, 64)}
    ```
    """

    sources: tuple[str, ...]
    shape: tuple[int, ...]
    compute: Callable[..., np.ndarray]
    dtype: np.dtype | None = None
    source_shape: tuple[int, ...] | None = None
    """The shape every source must have (default: `shape`)."""
    rowwise: bool = False
    """Row `i` of the view is computed from row `i` of its one source alone (so a chunk of
    rows, such as the embedding writer's, reads only those rows)."""


def rename(source: str, shape: tuple[int, ...]) -> View:
    return View((source,), shape, lambda x: x, rowwise=True)


def rows(source: str, start: int, stop: int, total: int, width: int | None = None) -> View:
    """Rows `[start, stop)` of a `[total, width]` weight, or of a `[total]` bias when
    `width` is None (one part of a fused projection)."""
    tail = () if width is None else (width,)
    return View((source,), (stop - start, *tail), lambda x: x[start:stop], source_shape=(total, *tail))


def scaled(source: str, shape: tuple[int, ...], factor: float) -> View:
    """`source × factor`, computed in fp32."""
    return View((source,), shape, lambda x: x * np.float32(factor), rowwise=True)


def plus_one(source: str, shape: tuple[int, ...]) -> View:
    """`1 + source` (a `(1 + w)` RMSNorm weight folded), in fp32: exact whatever the stored dtype."""
    return View((source,), shape, lambda x: x + np.float32(1), np.dtype(np.float32), rowwise=True)


def table(values: Iterable[float]) -> View:
    """A constant fp32 vector from the config (a rope factor table)."""
    array = np.asarray(list(values), np.float32)
    return View((), array.shape, lambda: array, np.dtype(np.float32))
