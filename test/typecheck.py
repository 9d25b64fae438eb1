"""Type-check `compiler/ dialects/ passes/ tools/` with mypy (run by `make test`).

mypy, like import-linter, reads a package from one folder, so the four mapped folders are
copied into one `axc` tree under `.typecheck/` (kept, so mypy's cache stays warm) and mypy's
paths are mapped back to the source folders in its report:

    passes/tile.py:125: error: "Attribute" has no attribute "get_shape"  [attr-defined]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from lint_imports import FOLDERS, ROOT, stage

STAGE = ROOT / ".typecheck"


def source_path(staged: str) -> str:
    """`axc/passes/tile.py` → `passes/tile.py` (the folder it was copied from)."""
    for folder, target in sorted(FOLDERS.items(), key=lambda item: -len(item[1])):
        if staged.startswith(f"{target}/"):
            return f"{folder}/{staged.removeprefix(target + '/')}"
    return staged


def main() -> int:
    shutil.rmtree(STAGE / "axc", ignore_errors=True)
    stage(ROOT, STAGE)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(STAGE / "cache"), "-p", "axc"],
        cwd=STAGE, capture_output=True, text=True,
    )
    sys.stdout.write(re.sub(r"^(axc/\S+\.py)", lambda m: source_path(m.group(1)), result.stdout, flags=re.M))
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
