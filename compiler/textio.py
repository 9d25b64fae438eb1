"""Reading and printing IR text (with every axc dialect registered)."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer

from axc.dialects import make_context


def parse_module(text: str, name: str = "<stdin>") -> ModuleOp:
    module = Parser(make_context(), text, name).parse_module()
    module.verify()
    return module


def read_module(path: str | Path) -> ModuleOp:
    return parse_module(Path(path).read_text(), str(path))


def module_text(module: ModuleOp) -> str:
    out = StringIO()
    Printer(stream=out).print_op(module)
    out.write("\n")
    return out.getvalue()
