"""The wheel holds every module of the source tree (the package list is derived by setup.py,
so a new subpackage cannot be left out silently)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"compiler": "axc", "dialects": "axc/dialects", "passes": "axc/passes", "tools": "axc/tools", "axengine": "axengine"}


def source_modules() -> set[str]:
    """`axc/...py` (and `axengine/...py`) paths of every source module, as the wheel should name them."""
    return {
        f"{target}/{path.relative_to(REPO / folder).as_posix()}"
        for folder, target in FOLDERS.items()
        for path in (REPO / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_wheel_holds_every_module(tmp_path: Path) -> None:
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources.
    copy = tmp_path / "src"
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, copy)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(wheels), str(copy)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = wheels.glob("axc-*.whl")
    inside = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    missing = sorted(source_modules() - inside)
    assert not missing, f"modules missing from the wheel: {missing}"
    assert "axc/llm_build/driver.py" in inside and "axc/isa/encoding.py" in inside
    assert "axengine/__init__.py" in inside  # the drop-in runtime module, importable as `axengine`
