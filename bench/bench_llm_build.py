"""Time `axc-llm-build` on a Qwen2.5-0.5B-shaped checkpoint with the README's seed command.

    python bench/bench_llm_build.py [--model DIR] [--out DIR] [--levels 0 1] [--parallel 8]

Runs the installed `axc-llm-build` once per check level (`-c 0`, `-c 1`) with kv 1023,
prefill 128 and last_kv_cache_len 128 256 384 512 on AX650, and prints the wall time, the
peak resident memory (the whole process tree, sampled every 20 ms, and the largest single
process), the stage times from build_report.json, the pre-build estimate of disk and
memory beside the measured figures, and the goals: `-c 0` <= 60 s and <= 4 GB, `-c 1`
<= 30 s and <= 2 GB. The checkpoint is bench/make_qwen05b.py's (made if missing).
Never run as a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_qwen05b import DEFAULT_OUT, ensure  # noqa: E402

GOALS = {0: (60.0, 4.0), 1: (30.0, 2.0)}
SEED = [
    "--hidden_state_type", "bf16", "--kv_cache_len", "1023", "--prefill_len", "128",
    "--last_kv_cache_len", "128", "--last_kv_cache_len", "256", "--last_kv_cache_len", "384",
    "--last_kv_cache_len", "512", "--chip", "AX650",
]


def tree_rss(root: int) -> tuple[int, int, int]:
    """(sum, max) resident bytes of `root` and its descendants, and their summed
    proportional set size (PSS: a page shared by n processes counts 1/n in each), from /proc."""
    pids, total, largest, pss = [root], 0, 0, 0
    while pids:
        pid = pids.pop()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        rss = next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        pss += next((int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")), 0)
        total, largest = total + rss, max(largest, rss)
        pids += [int(c) for c in children]
    return total, largest, pss


def run(command: list[str]) -> tuple[float, int, int, int, int]:
    """Wall seconds, peak tree RSS, peak single-process RSS, peak tree PSS, exit code."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks = [0, 0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for i, value in enumerate(tree_rss(proc.pid)):
                peaks[i] = max(peaks[i], value)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode:
        print(stderr, file=sys.stderr)
    return wall, peaks[0], peaks[1], peaks[2], proc.returncode


def measure(model: Path, out: Path, level: int, parallel: int) -> dict:
    """Run the seed command once; wall, peak RSS and the build report (exits on failure)."""
    tool = str(Path(sys.executable).parent / "axc-llm-build")
    command = [tool, "--input_path", str(model), "--output_path", str(out), *SEED, "-c", str(level), "--parallel", str(parallel)]
    wall, tree, single, pss, code = run(command)
    if code:
        sys.exit(f"axc-llm-build -c {level} failed (exit {code})")
    check = out / "check_report.json"
    return {
        "level": level, "wall": wall, "tree": tree, "single": single, "pss": pss,
        "report": json.loads((out / "build_report.json").read_text()),
        "check_s": json.loads(check.read_text())["seconds"] if level and check.is_file() else None,
    }


def show(m: dict) -> None:
    """Print one measurement: wall, memory, stages, output size against the pre-build estimate."""
    report, level = m["report"], m["level"]
    timings = report["timings_s"]
    stages = ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if isinstance(v, float) and k != "layer_mean")
    if m["check_s"] is not None:
        stages += f", check layers {m['check_s']:.1f}"
    passes = ", ".join(f"{k} {v:.2f}" for k, v in timings["passes"].items())
    estimate = report["estimate"]
    print(f"-c {level}: wall {m['wall']:.1f} s, peak RSS {m['tree'] / 2**30:.2f} GiB (process tree), "
          f"{m['single'] / 2**30:.2f} GiB (largest process), peak PSS {m['pss'] / 2**30:.2f} GiB (process tree)")
    print(f"  stages (s): {stages}; mean per layer {timings['layer_mean']:.2f} s")
    print(f"  passes (s): {passes}")
    print(f"  disk: {report['total_bytes'] / 2**20:,.1f} MiB written, estimate {estimate['disk_bytes'] / 2**20:,.1f} MiB; "
          f"memory: {m['tree'] / 2**30:.2f} GiB peak measured, estimate {estimate['peak_memory_bytes'] / 2**30:.2f} GiB")
    prediction = report["predictions"]["model"]
    print(f"  cost model: decode {prediction['decode_ms_per_token']:.1f} ms/token ({prediction['decode_tokens_per_s']:.1f} tok/s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help=f"checkpoint (default: {DEFAULT_OUT}, made if missing)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "qwen05b-axmodel")
    p.add_argument("--levels", type=int, nargs="+", default=[0, 1], choices=[0, 1, 2])
    p.add_argument("--parallel", type=int, default=8)
    args = p.parse_args()
    model = args.model if args.model is not None else ensure(DEFAULT_OUT)
    rows = []
    for level in args.levels:
        m = measure(model, args.out, level, args.parallel)
        show(m)
        wall_goal, rss_goal = GOALS.get(level, (None, None))
        if wall_goal is not None:
            rows.append((f"-c {level} wall s", f"{m['wall']:.1f}", f"<= {wall_goal:g}", m["wall"] <= wall_goal))
        if rss_goal is not None:
            rows.append((f"-c {level} peak GiB", f"{m['tree'] / 2**30:.2f}", f"<= {rss_goal:g}", m["tree"] / 2**30 <= rss_goal))
    table(rows)


def table(rows: list[tuple[str, str, str, bool]]) -> None:
    print(f"{'metric':<16} {'value':>8}  {'goal':<8} ok  (cores: {os.cpu_count()})")
    for name, value, goal, ok in rows:
        print(f"{name:<16} {value:>8}  {goal:<8} {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
