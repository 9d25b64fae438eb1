"""Checkpoints read through views: virtual tensors a family computes from the stored ones.

What a family needs that is pure algebra on weights (splitting fused projections, folding
`(1 + w)` or a scalar into weights, renaming, tables from the config; `families.tensors.View`)
is served lazily under the canonical names its builder reads. The IR, the structure keys,
the layer workers and the runtime files then see a plain checkpoint; the stored tensors
that views replace are hidden.

```python
views = {"model.layers.0.self_attn.q_proj.weight": rows("model.layers.0.self_attn.qkv_proj.weight", 0, 64, 64)}
checkpoint = ViewCheckpoint.wrap(Checkpoint.open(model_dir), views)
checkpoint.get("model.layers.0.self_attn.q_proj.weight")   # computed on access, in the source dtype
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from axc.checkpoints import open_checkpoint
from axc.checkpoints.gptq import GptqCheckpoint
from axc.errors import AxcError
from axc.frontend.checkpoint_check import stored_layers
from axc.frontend.config import load_config
from axc.frontend.families import get_family
from axc.frontend.families.blocks import ROPE_FACTORS
from axc.frontend.families.tensors import View, rename, table
from axc.frontend.model_config import ModelConfig
from axc.params import Checkpoint


class ViewCheckpoint(Checkpoint):
    """A checkpoint (`inner`, possibly itself viewed) that also answers its views' names and
    hides the stored tensors they replace, and those `hide` names (a vision tower's). A view
    whose sources are not stored is left out (the checkpoint check names its tensor); one
    whose source has another shape than the config implies is a one-line error."""

    inner: Checkpoint
    views: dict[str, View]
    hidden: frozenset[str]

    @classmethod
    def wrap(
        cls, checkpoint: Checkpoint, views: Mapping[str, View], hide: Callable[[str], bool] | None = None
    ) -> ViewCheckpoint:
        wrapped = cls(checkpoint.path, checkpoint._files, checkpoint._owner)  # noqa: SLF001 - same files, more names
        wrapped.inner = checkpoint
        wrapped.views = {key: view for key, view in views.items() if all(s in checkpoint for s in view.sources)}
        for key, view in wrapped.views.items():
            for source in view.sources:
                shape, expected = checkpoint.shape(source), view.source_shape or view.shape
                if tuple(shape) != tuple(expected):
                    raise AxcError(
                        f"tensor {source} has shape {list(shape)} in {checkpoint.file(source)} but config.json "
                        f"implies {list(expected)} (axc reads it as {key}); the checkpoint does not match config.json"
                    )
        replaced = {source for view in wrapped.views.values() for source in view.sources} - set(views)
        wrapped.hidden = frozenset(k for k in checkpoint.keys() if k in replaced or (hide is not None and hide(k)))
        return wrapped

    def keys(self) -> list[str]:
        return [k for k in self.inner.keys() if k not in self.hidden and k not in self.views] + list(self.views)

    def __contains__(self, key: object) -> bool:
        return key in self.views or (key in self.inner and key not in self.hidden)

    def find_key(self, *candidates: str) -> str | None:
        return next((key for key in candidates if key in self), None)

    def file(self, key: str) -> Path:
        view = self.views.get(key)
        if view is None:
            return self.inner.file(key)
        return self.inner.file(view.sources[0]) if view.sources else self.files[0]

    def shape(self, key: str) -> tuple[int, ...]:
        view = self.views.get(key)
        return view.shape if view is not None else self.inner.shape(key)

    def dtype(self, key: str) -> np.dtype:
        view = self.views.get(key)
        if view is None:
            return self.inner.dtype(key)
        return view.dtype if view.dtype is not None else self.inner.dtype(view.sources[0])

    def get(self, key: str) -> np.ndarray:
        view = self.views.get(key)
        if view is None:
            return self.inner.get(key)
        arrays = [np.asarray(self.inner.get(source), np.float32) for source in view.sources]
        out = np.ascontiguousarray(np.asarray(view.compute(*arrays), np.float32).astype(self.dtype(key)))
        assert out.shape == view.shape, (key, out.shape, view.shape)
        out.flags.writeable = False
        return out

    def rows(self, key: str, start: int, stop: int) -> np.ndarray:
        view = self.views.get(key)
        if view is None:
            return self.inner.rows(key, start, stop)
        if not view.rowwise:
            return self.get(key)[start:stop]
        source = np.asarray(self.inner.rows(view.sources[0], start, stop), np.float32)
        out = np.ascontiguousarray(np.asarray(view.compute(source), np.float32).astype(self.dtype(key)))
        out.flags.writeable = False
        return out


def checkpoint_views(config: ModelConfig, layers: int) -> dict[str, View]:
    """The views a model of `config` is read through, for its first `layers` layers (those
    stored: a config claiming more is reported by the checkpoint check, not enumerated):
    its family's, and a longrope's two factor tables beside every layer."""
    config = dataclasses.replace(config, num_hidden_layers=min(layers, config.num_hidden_layers))
    family = get_family(config.model_type)
    views = dict(family.views(config)) if family.views is not None else {}
    scaling = config.rope_scaling
    if scaling.kind == "longrope":
        for i in range(config.num_hidden_layers):
            for kind, factors in (("short", scaling.short_factor), ("long", scaling.long_factor)):
                views[family.layer_key(i, ROPE_FACTORS.format(kind))] = table(factors)
    return views


def open_model_checkpoint(path: str | Path) -> Checkpoint:
    """`axc.checkpoints.open_checkpoint`, read through the family's views when the model
    directory's family has any (every reader of a model's weights opens it so)."""
    checkpoint = open_checkpoint(path)
    if not (Path(path).is_dir() and (Path(path) / "config.json").is_file()):
        return checkpoint
    try:
        config = load_config(path)
    except AxcError:
        return checkpoint  # the import reports the config's own problem
    if config.wrapper:
        checkpoint = language_model(checkpoint)
    views = checkpoint_views(config, stored_layers(config, checkpoint))
    if not views:
        return checkpoint
    if isinstance(checkpoint, GptqCheckpoint):
        raise AxcError(f"{path}: GPTQ checkpoints of model_type {config.model_type!r} are not supported yet; use its float checkpoint")
    return ViewCheckpoint.wrap(checkpoint, views)


LANGUAGE_MODEL = "language_model."
"""Where vision-language checkpoints keep their language model (InternVL's remote code, and
what transformers' `internvl` class saves)."""


def language_model(checkpoint: Checkpoint) -> ViewCheckpoint:
    """A vision-language checkpoint as its language model alone: its `language_model.*`
    tensors under their own names, everything else (vision tower, projector) hidden."""
    views = {
        key.removeprefix(LANGUAGE_MODEL): rename(key, tuple(checkpoint.shape(key)))
        for key in checkpoint.keys()
        if key.startswith(LANGUAGE_MODEL)
    }
    return ViewCheckpoint.wrap(checkpoint, views, hide=lambda key: not key.startswith(LANGUAGE_MODEL))


def language_model_line(config: ModelConfig, checkpoint: Checkpoint) -> str:
    """The build log's line on what of a vision-language checkpoint is built."""
    while isinstance(checkpoint, ViewCheckpoint):
        checkpoint = checkpoint.inner  # the stored tensors
    ignored = sum(1 for key in checkpoint.keys() if not key.startswith(LANGUAGE_MODEL))
    return (
        f"{config.wrapper}: building its language model ({config.model_type}, {config.num_hidden_layers} layers, "
        f"tensors under {LANGUAGE_MODEL}); {ignored} tensors of the vision tower and projector are ignored "
        "(build the vision encoder separately)"
    )
