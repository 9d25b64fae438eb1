"""Time `quantize-weights` on a Qwen2.5-0.5B-shaped checkpoint (every decoder linear + lm_head).

    python bench/bench_quantize.py [--model DIR] [--repeat 2]

Makes the random checkpoint first when DIR is the default and it is missing
(bench/make_qwen05b.py). Each configuration runs in a child process (a fresh page cache
mapping and a clean peak RSS): import the headers, then apply `quantize-weights`; the child
reports the pass's wall time, the parent reads the child's peak RSS (wait4). Goals: s8 ≤ 5 s,
s4 g128 ≤ 8 s, peak RSS ≤ 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_qwen05b import DEFAULT_OUT, ensure  # noqa: E402

CONFIGS = {
    "s8": ("quantize-weights{weight-type=s8 post-weight-type=s8}", 5.0),
    "s4 g128": ("quantize-weights{weight-type=s4 group-size=128 post-weight-type=s8}", 8.0),
}
GOAL_RSS_MB = 1536.0


def child(model: Path, weight_type: str, group_size: int | None) -> None:
    """Quantize in this process and print the timings as JSON."""
    from axc.binding import store_for
    from axc.dialects import make_context
    from axc.frontend.hf_import import import_hf
    from axc.passes.quantize_weights import QuantizeWeights

    start = time.perf_counter()
    module = import_hf(model)
    imported = time.perf_counter()
    QuantizeWeights(weight_type=weight_type, group_size=group_size).apply(make_context(), module)
    created = store_for(module).created()["axc"]  # the pass adds lazy parameters: computed here
    done = time.perf_counter()
    print(json.dumps({
        "import_s": imported - start,
        "quantize_s": done - imported,
        "params": len(created),
        "bytes": sum(a.nbytes for a in created.values()),
    }))


def run(model: Path, weight_type: str, group_size: int | None) -> tuple[dict[str, float], float]:
    command = [sys.executable, __file__, "--child", weight_type, "--model", str(model)]
    if group_size is not None:
        command += ["--group-size", str(group_size)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().decode() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return json.loads(out), usage.ru_maxrss / 1024.0  # KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", type=Path, default=None, help=f"checkpoint directory (default: {DEFAULT_OUT}, made if missing)"
    )
    p.add_argument("--repeat", type=int, default=2, help="timed runs per configuration (default: 2)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--group-size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    model = args.model if args.model is not None else ensure(DEFAULT_OUT)
    if args.child:
        return child(model, args.child, args.group_size)

    print(f"quantize-weights on {model} ({sys.platform}, {os.cpu_count()} CPUs)")
    print(f"{'config':<10} {'quantize s (min)':>17} {'import s':>9} {'peak RSS MB':>12} {'params MB':>10}  goal")
    for name, (pipeline, goal_s) in CONFIGS.items():
        weight_type, group = ("s4", 128) if name.startswith("s4") else ("s8", None)
        runs = [run(model, weight_type, group) for _ in range(args.repeat)]
        best = min(r["quantize_s"] for r, _ in runs)
        rss = max(peak for _, peak in runs)
        made = runs[0][0]["bytes"] / 2**20
        verdict = "ok" if best <= goal_s and rss <= GOAL_RSS_MB else "MISSED"
        print(
            f"{name:<10} {best:>17.2f} {runs[0][0]['import_s']:>9.2f} {rss:>12.0f} {made:>10.0f}  "
            f"<= {goal_s:g} s, <= {GOAL_RSS_MB:.0f} MB: {verdict}   ({pipeline})"
        )


if __name__ == "__main__":
    main()
