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


IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(.*)$")


def unexplained_ignores(root: Path = ROOT) -> list[str]:
    """`path:line` of each `# type: ignore[code]` not followed by `  # why`."""
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                match = IGNORE.search(line)
                if match and not match.group(2).strip().startswith("#"):
                    found.append(f"{path.relative_to(root)}:{number}: a `# type: ignore` needs its reason after it (`  # why`)")
    return found


def main() -> int:
    missing = unexplained_ignores()
    if missing:
        print("\n".join(missing))
        return 1
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
