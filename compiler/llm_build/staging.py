"""Atomic output directories: build beside the target, rename into place when complete.

A build writes into `.{name}.XXXX.partial` next to the output path. Only a complete build
is renamed to the output path (replacing an earlier build there); a failed or interrupted
one is removed, and one killed outright leaves only that hidden `.partial` directory, never
a directory that looks like a model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from axc.errors import AxcError
from axc.atomic import current_umask

MARKER = "build_report.json"
"""Written last into every complete build; an existing output without it is not replaced."""


def check_replaceable(path: Path) -> None:
    """`path` may become the output: absent, empty, or an earlier complete build."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise AxcError(f"output path {path} exists and is not a directory; choose another --output_path")
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise AxcError(
            f"output path {path} is a non-empty directory that is not an axc build (no {MARKER}); "
            "choose a new --output_path or empty it"
        )


def existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_writable(path: Path) -> None:
    """The output's parent exists (or can be made) and accepts new entries."""
    ancestor = existing_ancestor(path.parent)
    if not ancestor.is_dir():
        raise AxcError(f"cannot create --output_path {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise AxcError(f"cannot write --output_path {path}: {ancestor} is not writable; choose another path")


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """A fresh temporary sibling of `final`; renamed to `final` when the block completes."""
    final = final.absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial"))
    try:
        yield staging
        replace_directory(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_directory(source: Path, final: Path) -> None:
    """Move `source` to `final`; an earlier build at `final` is removed only afterwards."""
    os.chmod(source, 0o777 & ~current_umask())  # mkdtemp makes it private; a plain mkdir would not
    if not final.exists():
        os.replace(source, final)
        return
    check_replaceable(final)
    old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
    os.replace(final, old / final.name)
    os.replace(source, final)
    shutil.rmtree(old, ignore_errors=True)
