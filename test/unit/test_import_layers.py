"""The package floors hold, an upward import fails naming its line, and the package graph
(grimp) has no cycle. Each check runs in a subprocess over a staged `axc` tree, because this
process has already imported the installed `axc` (whose folders are split four ways)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT = REPO / "test" / "lint_imports.py"


def copy_of_source(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    for folder in ("compiler", "dialects", "passes", "tools"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    return source


def lint(source: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(LINT), str(source)], capture_output=True, text=True, timeout=120)


def add_line(path: Path, line: str) -> int:
    """Append `line` to `path`; its line number."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, line]) + "\n")
    return len(lines) + 1


def test_upward_import_fails_with_its_line(tmp_path: Path) -> None:
    source = copy_of_source(tmp_path)
    number = add_line(source / "compiler" / "errors.py", "from axc.llm_build import driver")
    result = lint(source)
    assert result.returncode == 1
    assert "axc.errors is not allowed to import axc.llm_build" in result.stdout
    assert f"axc.errors -> axc.llm_build.driver (l.{number})" in result.stdout


def test_sideways_import_between_independent_siblings_fails(tmp_path: Path) -> None:
    source = copy_of_source(tmp_path)
    number = add_line(source / "passes" / "fuse.py", "import axc.sim.session")
    result = lint(source)
    assert result.returncode == 1
    assert f"axc.passes.fuse -> axc.sim.session (l.{number})" in result.stdout


def test_pass_importing_another_pass_fails(tmp_path: Path) -> None:
    """What passes share sits below them (`axc.ocm`, `axc.npu_builder`, `axc.gptq_patterns`)."""
    source = copy_of_source(tmp_path)
    number = add_line(source / "passes" / "tile.py", "from axc.passes.allocate_ocm import AllocateOcm")
    result = lint(source)
    assert result.returncode == 1
    assert "the passes are independent of each other BROKEN" in result.stdout
    assert f"axc.passes.tile -> axc.passes.allocate_ocm (l.{number})" in result.stdout


def test_unplaced_module_fails(tmp_path: Path) -> None:
    source = copy_of_source(tmp_path)
    (source / "compiler" / "stray.py").write_text('"""A module without a floor."""\n')
    result = lint(source)
    assert result.returncode == 1
    assert "axc.stray" in result.stdout and "not listed as layers" in result.stdout


def test_cycle_inside_a_package_fails(tmp_path: Path) -> None:
    source = copy_of_source(tmp_path)
    add_line(source / "compiler" / "frontend" / "config.py", "import axc.frontend.hf_import")
    result = lint(source)
    assert result.returncode == 1
    assert "no import cycle between the packages of any package BROKEN" in result.stdout


GRAPH = """
import graphlib, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from lint_imports import ROOT, stage
sys.path.insert(0, str(stage(ROOT, Path(sys.argv[2]))))
import grimp
graph = grimp.build_graph("axc", cache_dir=None)
def package(name):
    return ".".join(name.split(".")[:2])
edges = {package(m): set() for m in graph.modules}
for importer in graph.modules:
    for imported in graph.find_modules_directly_imported_by(importer):
        if package(importer) != package(imported) and package(imported) != "axc":
            edges[package(importer)].add(package(imported))
try:
    order = list(graphlib.TopologicalSorter(edges).static_order())
except graphlib.CycleError as error:
    print(json.dumps({"cycle": error.args[1]}))
else:
    print(json.dumps({"order": order, "packages": sorted(edges)}))
"""


def test_package_graph_is_acyclic(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", GRAPH, str(LINT.parent), str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    answer = json.loads(result.stdout)
    assert "cycle" not in answer, f"package import cycle: {' -> '.join(answer['cycle'])}"
    assert {"axc.dialects", "axc.passes", "axc.tools", "axc.isa", "axc.llm_build"} <= set(answer["packages"])
    assert answer["order"].index("axc.isa") < answer["order"].index("axc.dialects") < answer["order"].index("axc.passes")
