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


def _ax650() -> Dialect:
    from axc.dialects.ax650 import AX650

    return AX650


def _ax620e() -> Dialect:
    from axc.dialects.ax620e import AX620E

    return AX620E


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
    "ax650": _ax650,
    "ax620e": _ax620e,
}


def make_context() -> Context:
    """A context with every axc dialect registered (loaded on first use)."""

    ctx = Context()
    for name, factory in DIALECTS.items():
        ctx.register_dialect(name, factory)
    return ctx
