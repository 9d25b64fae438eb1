"""The model families axc imports, by Hugging Face `model_type`.

Each family is one module (`llama.py`, ...) holding a `Family`; adding one is its module,
a line here and its tests. Modules load on first use, so listing the registry is free.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from axc.frontend.families.base import Family


def _family(module: str, name: str) -> Callable[[], Family]:
    def load() -> Family:
        return getattr(import_module(f"axc.frontend.families.{module}"), name)

    return load


FAMILIES: dict[str, Callable[[], Family]] = {
    "qwen2": _family("llama", "QWEN2"),
    "llama": _family("llama", "LLAMA"),
    "qwen3": _family("qwen3", "QWEN3"),
    "hunyuan_v1_dense": _family("hunyuan", "HUNYUAN"),
    "gemma2": _family("gemma2", "GEMMA2"),
    "phi": _family("phi", "PHI"),
    "phi3": _family("phi3", "PHI3"),
    "chatglm": _family("chatglm", "CHATGLM"),
    "minicpm": _family("minicpm", "MINICPM"),
}


def get_family(model_type: str) -> Family:
    """The family of a `model_type` from the registry (`load_config` has checked it)."""
    return FAMILIES[model_type]()
