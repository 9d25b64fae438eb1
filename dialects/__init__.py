"""axc dialects, registered lazily by name."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.context import Context
from xdsl.ir import Dialect


def _axc() -> Dialect:
    from axc.dialects.axc import AXC

    return AXC


def _tfm() -> Dialect:
    from axc.dialects.tfm import TFM

    return TFM


def _quant() -> Dialect:
    from axc.dialects.quant import QUANT

    return QUANT


def _npu() -> Dialect:
    from axc.dialects.npu import NPU

    return NPU


def _builtin() -> Dialect:
    from xdsl.dialects.builtin import Builtin

    return Builtin


def _func() -> Dialect:
    from xdsl.dialects.func import Func

    return Func


DIALECTS: dict[str, Callable[[], Dialect]] = {
    "builtin": _builtin,
    "func": _func,
    "axc": _axc,
    "tfm": _tfm,
    "quant": _quant,
    "npu": _npu,
}


def make_context() -> Context:
    """A context with every axc dialect registered (loaded on first use)."""

    ctx = Context()
    for name, factory in DIALECTS.items():
        ctx.register_dialect(name, factory)
    return ctx
