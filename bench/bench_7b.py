"""Time `axc-llm-build` on a Qwen2.5-7B-shaped checkpoint with the seed command's flags.

    python bench/bench_7b.py [--model DIR] [--out DIR] [--parallel 2]

The checkpoint is bench/make_qwen7b.py's (28 layers, hidden 3584, bf16, sharded, ~15 GB;
made once, outside the repository, if missing); the output goes beside it
unless `--out` says otherwise (~9.9 GB, removed afterwards unless `--keep`). Runs `-c 0 --parallel 2` and prints the wall time, the peak
resident memory of the whole process tree (sampled every 20 ms) and of the largest
process, the build's own estimate of disk and memory beside the measured figures, and the
goals: <= 5 min wall, <= 4 GB peak summed over processes. Never run as a test.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_llm_build import measure, show, table  # noqa: E402
from make_qwen7b import default_out, ensure  # noqa: E402

WALL_GOAL, RSS_GOAL = 300.0, 4.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None, help=f"checkpoint (default: {default_out()}, made if missing)")
    p.add_argument("--out", type=Path, default=None, help="build output (default: beside the checkpoint)")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep the build output (default: removed afterwards)")
    args = p.parse_args()
    model = args.model if args.model is not None else ensure()
    out = args.out or model.with_name(model.name + "-axmodel")
    try:
        m = measure(model, out, 0, args.parallel)
        show(m)
        table([
            ("-c 0 wall s", f"{m['wall']:.1f}", f"<= {WALL_GOAL:g}", m["wall"] <= WALL_GOAL),
            ("-c 0 peak GiB", f"{m['tree'] / 2**30:.2f}", f"<= {RSS_GOAL:g}", m["tree"] / 2**30 <= RSS_GOAL),
        ])
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
