"""Check the package floors of pyproject.toml's `[tool.importlinter]` (run by `make test`).

import-linter (through grimp) reads a package from one folder, but `axc` is mapped from four
(`compiler/`, `dialects/`, `passes/`, `tools/`). So the sources are first copied, unchanged
(line numbers stay right), into one `axc` tree in a temporary folder, and that tree is what
the linter imports. An upward import fails with its importing module and line:

    axc.dialects.axtarget -> axc.codegen.lowering (l.69)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"compiler": "axc", "dialects": "axc/dialects", "passes": "axc/passes", "tools": "axc/tools"}


def stage(source: Path, into: Path) -> Path:
    """Copy the four mapped folders of `source` into one `axc` package under `into`."""
    for folder, target in FOLDERS.items():
        shutil.copytree(source / folder, into / target, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def lint(source: Path = ROOT) -> int:
    """Run import-linter over a staged copy of `source`; its exit status."""
    from importlinter.cli import lint_imports

    with tempfile.TemporaryDirectory(prefix="axc-imports-") as tmp:
        sys.path.insert(0, str(stage(source, Path(tmp))))
        try:
            return lint_imports(config_filename=str(source / "pyproject.toml"), no_cache=True, no_logo=True)
        finally:
            sys.path.remove(tmp)


if __name__ == "__main__":
    sys.exit(lint(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
