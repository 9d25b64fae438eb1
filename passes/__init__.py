"""axc passes, registered lazily by their command-line names."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def _specialize_groups() -> type[ModulePass]:
    from axc.passes.specialize_groups import SpecializeGroups

    return SpecializeGroups


def _quantize_weights() -> type[ModulePass]:
    from axc.passes.quantize_weights import QuantizeWeights

    return QuantizeWeights


def _import_gptq() -> type[ModulePass]:
    from axc.passes.import_gptq import ImportGptq

    return ImportGptq


def _set_activation_type() -> type[ModulePass]:
    from axc.passes.set_activation_type import SetActivationType

    return SetActivationType


def _post_topk() -> type[ModulePass]:
    from axc.passes.post_topk import PostTopk

    return PostTopk


def _tile() -> type[ModulePass]:
    from axc.passes.tile import Tile

    return Tile


def _allocate_ocm() -> type[ModulePass]:
    from axc.passes.allocate_ocm import AllocateOcm

    return AllocateOcm


def _fuse() -> type[ModulePass]:
    from axc.passes.fuse import Fuse

    return Fuse


def _double_buffer() -> type[ModulePass]:
    from axc.passes.double_buffer import DoubleBuffer

    return DoubleBuffer


def _lower_to_ax650() -> type[ModulePass]:
    from axc.passes.lower_to_ax650 import LowerToAx650

    return LowerToAx650


def _lower_to_ax620e() -> type[ModulePass]:
    from axc.passes.lower_to_ax620e import LowerToAx620e

    return LowerToAx620e


PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "specialize-groups": _specialize_groups,
    "quantize-weights": _quantize_weights,
    "import-gptq": _import_gptq,
    "set-activation-type": _set_activation_type,
    "post-topk": _post_topk,
    "tile": _tile,
    "fuse": _fuse,
    "double-buffer": _double_buffer,
    "allocate-ocm": _allocate_ocm,
    "lower-to-ax650": _lower_to_ax650,
    "lower-to-ax620e": _lower_to_ax620e,
}
