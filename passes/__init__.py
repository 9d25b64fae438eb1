"""axc passes, registered lazily by their command-line names."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def _specialize_groups() -> type[ModulePass]:
    from axc.passes.specialize_groups import SpecializeGroups

    return SpecializeGroups


PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "specialize-groups": _specialize_groups,
}
