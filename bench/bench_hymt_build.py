"""Time `axc-llm-build` on an HY-MT1.5-1.8B-shaped checkpoint with the vendor's AX650 recipe.

    python bench/bench_hymt_build.py [--model DIR] [--out DIR] [--levels 0 1] [--parallel 8]

The recipe (AXERA-TECH/HY-MT1.5-1.8B.axera `model_convert/README.md`): bf16 hidden states,
kv 2047, prefill 128, last_kv_cache_len 128 256 ... 1024, AX650, `--parallel 8`. Runs the
installed `axc-llm-build` once per check level and prints the wall time, the peak resident
memory of the process tree (sampled every 20 ms) and of its largest process, the stage
times, and the goals: `-c 0` <= 60 s, `-c 1` <= 150 s, <= 3 GB. The checkpoint is
bench/make_hymt18b.py's (made if missing, ~3.6 GB). Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_llm_build import run  # noqa: E402
from make_hymt18b import DEFAULT_OUT, ensure  # noqa: E402

GOALS = {0: (60.0, 3.0), 1: (150.0, 3.0)}
RECIPE = [
    "--hidden_state_type", "bf16", "--prefill_len", "128", "--kv_cache_len", "2047",
    *[a for n in range(128, 1025, 128) for a in ("--last_kv_cache_len", str(n))], "--chip", "AX650",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help=f"checkpoint (default: {DEFAULT_OUT}, made if missing)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "hymt18b-axmodel")
    p.add_argument("--levels", type=int, nargs="+", default=[0, 1], choices=[0, 1])
    p.add_argument("--parallel", type=int, default=8)
    args = p.parse_args()
    model = args.model if args.model is not None else ensure(DEFAULT_OUT)
    tool = str(Path(sys.executable).parent / "axc-llm-build")
    rows = []
    for level in args.levels:
        command = [tool, "--input_path", str(model), "--output_path", str(args.out), *RECIPE, "-c", str(level), "--parallel", str(args.parallel)]
        wall, tree, single, _, code = run(command)
        if code:
            sys.exit(f"axc-llm-build -c {level} failed (exit {code})")
        report = json.loads((args.out / "build_report.json").read_text())
        timings = report["timings_s"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if isinstance(v, float) and k != "layer_mean")
        check = args.out / "check_report.json"
        if level and check.is_file():
            data = json.loads(check.read_text())
            stages += f", check layers {data['seconds']:.1f} (worst layer cosine {data['worst_layer_cosine']:.6f})"
        print(f"-c {level}: wall {wall:.1f} s, peak RSS {tree / 2**30:.2f} GiB (process tree), {single / 2**30:.2f} GiB (largest process)")
        print(f"  stages (s): {stages}; mean per layer {timings['layer_mean']:.2f} s")
        print(f"  output {report['total_bytes'] / 2**20:,.1f} MiB; {len(report['effective']['histories'])} shape groups; "
              f"estimate {report['estimate']['peak_memory_bytes'] / 2**30:.2f} GiB peak memory")
        model_prediction = report["predictions"]["model"]
        print(f"  cost model: decode {model_prediction['decode_ms_per_token']:.1f} ms/token "
              f"({model_prediction['decode_tokens_per_s']:.1f} tok/s)")
        wall_goal, rss_goal = GOALS[level]
        rows.append((f"-c {level} wall s", f"{wall:.1f}", f"<= {wall_goal:g}", wall <= wall_goal))
        rows.append((f"-c {level} peak GiB", f"{tree / 2**30:.2f}", f"<= {rss_goal:g}", tree / 2**30 <= rss_goal))
    print(f"{'metric':<16} {'value':>8}  {'goal':<8} ok  (cores: {os.cpu_count()})")
    for name, value, goal, ok in rows:
        print(f"{name:<16} {value:>8}  {goal:<8} {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
