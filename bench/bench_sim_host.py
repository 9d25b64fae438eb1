"""Where a simulator decode token goes: the plans' steps, and the host's work around them
(the host loop, the sessions, staging the inputs, the BLAS limit, the outputs).

    python bench/bench_sim_host.py [--build DIR] [--tokens 24] [--sim-threads 1|2]

Runs the 0.5B-shaped s8 build of `bench/bench_simulator.py` (build it with that script
first) through `axc.hostloop.HostLoop`: a short prompt, two warm-up steps, then one token
per step. Each plan's step list gets a first and a last step that read the clock, so the
steps' own time is measured without changing how a plan runs; the rest of a token's wall
time is the work outside the steps. Prints the medians over the tokens (the machine is
shared: compare figures from one run, or alternate runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
PROMPT = np.array([9707, 11, 1246, 525, 498, 30, 358, 1079])


def main() -> None:
    from axc.hostloop import HostLoop
    from axc.sim.executor import AxModelExecutor
    from axc.sim.plan import Workspace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=ROOT / "out" / "qwen05b_ax650_kv255")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--sim-threads", type=int, choices=[1, 2], help="the simulator's threads (default: 2 on 2+ cores)")
    args = parser.parse_args()
    if not (args.build / "post_config.json").is_file():
        sys.exit(f"{args.build}: no build; run python bench/bench_simulator.py first")
    executor = AxModelExecutor(args.build, None if args.sim_threads is None else Workspace(threads=args.sim_threads))
    executor.prepare()
    inside = [0.0]
    started = [0.0]

    def start() -> None:
        started[0] = time.perf_counter()

    def stop() -> None:
        inside[0] += time.perf_counter() - started[0]

    for session in (*executor.sessions.values(), executor.post_model()):
        for plan in session.plans.values():
            plan.steps = [start, *plan.steps, stop]
    loop = HostLoop(executor, executor.layout)
    token = int(np.argmax(loop.logits(loop.prefill(PROMPT)[-1])))
    for _ in range(2):
        token = int(np.argmax(loop.logits(loop.decode_hidden(token)[-1])))
    totals, steps = [], []
    for _ in range(args.tokens):
        inside[0] = 0.0
        begin = time.perf_counter()
        token = int(np.argmax(loop.logits(loop.decode_hidden(token)[-1])))
        totals.append(time.perf_counter() - begin)
        steps.append(inside[0])
    total, outside = float(np.median(totals)) * 1e3, float(np.median(np.subtract(totals, steps))) * 1e3
    print(
        f"decode token: {total:.2f} ms median over {args.tokens} ({1e3 / total:.2f} tokens/s), steps {float(np.median(steps)) * 1e3:.2f} ms, "
        f"outside the steps {outside:.2f} ms ({getattr(executor.workspace, 'threads', 1)} simulator threads)"
    )


if __name__ == "__main__":
    main()
