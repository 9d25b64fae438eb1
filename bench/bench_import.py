"""Time `axc-translate --import-hf` on a Qwen2.5-0.5B-shaped checkpoint.

    python bench/bench_import.py [--model DIR] [--repeat 3]

Makes the random checkpoint first when DIR is the default and it is missing
(bench/make_qwen05b.py), then runs the real console script as a child process several
times and prints wall time (min/median), the child's peak RSS and the op count of the
module, against the goals (import ≤ 3 s, ≤ 400 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_qwen05b import DEFAULT_OUT, ensure  # noqa: E402

GOAL_WALL_S = 3.0
GOAL_RSS_MB = 400.0


def tool(name: str) -> str:
    """The console script beside this interpreter (the venv's), else the one on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def run_once(command: list[str]) -> tuple[float, float]:
    """Run `command`; its wall time in s and its own peak RSS in MB (via wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr}")
    return wall, usage.ru_maxrss / 1024.0  # ru_maxrss is in KiB on Linux


def op_count(path: Path) -> tuple[int, int]:
    """(ops, functions) of the module in `path`, parsed with axc's dialects."""
    from xdsl.dialects import func

    from axc.textio import read_module

    module = read_module(path)
    ops = sum(1 for _ in module.walk()) - 1  # not the module itself
    funcs = sum(1 for op in module.ops if isinstance(op, func.FuncOp))
    return ops, funcs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help=f"checkpoint directory (default: {DEFAULT_OUT}, made if missing)")
    p.add_argument("--repeat", type=int, default=3, help="number of timed runs (default: 3)")
    args = p.parse_args()
    model = args.model if args.model is not None else ensure(DEFAULT_OUT)
    if not (model / "config.json").is_file():
        sys.exit(f"{model} has no config.json; run bench/make_qwen05b.py --out {model}")

    with tempfile.TemporaryDirectory(prefix="axc-bench-") as tmp:
        out = Path(tmp) / "x.mlir"
        command = [tool("axc-translate"), "--import-hf", str(model), "-o", str(out)]
        runs = [run_once(command) for _ in range(args.repeat)]
        ops, funcs = op_count(out)
        size_kb = out.stat().st_size / 1024

    walls = [wall for wall, _ in runs]
    rss = max(peak for _, peak in runs)
    wall_min, wall_med = min(walls), statistics.median(walls)
    rows = [
        ("wall s (min)", f"{wall_min:.2f}", f"<= {GOAL_WALL_S:g}", wall_min <= GOAL_WALL_S),
        ("wall s (median)", f"{wall_med:.2f}", f"<= {GOAL_WALL_S:g}", wall_med <= GOAL_WALL_S),
        ("peak RSS MB", f"{rss:.0f}", f"<= {GOAL_RSS_MB:g}", rss <= GOAL_RSS_MB),
        ("ops", str(ops), "", None),
        ("functions", str(funcs), "", None),
        ("IR text KiB", f"{size_kb:.0f}", "", None),
    ]
    print(f"axc-translate --import-hf {model}  ({args.repeat} runs: {', '.join(f'{w:.2f}' for w in walls)} s)")
    print(f"{'metric':<16} {'value':>8}  {'goal':<8} ok")
    for name, value, goal, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<16} {value:>8}  {goal:<8} {mark}")


if __name__ == "__main__":
    main()
