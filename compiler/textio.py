"""Reading and writing IR text, and atomic output files."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import IO

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


@contextmanager
def atomic_output(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside `path`; rename it into place only on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as stream:
            yield stream
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it private; a plain open would not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(text: str, path: str | Path | None) -> None:
    """Write to `path` atomically, or to stdout when `path` is None or '-'."""
    if path is None or str(path) == "-":
        sys.stdout.write(text)
    else:
        with atomic_output(path) as stream:
            stream.write(text)
