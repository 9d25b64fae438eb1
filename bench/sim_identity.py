"""The simulator's bytes on a built model: the prompt's hidden states and logits, then
`--steps` decode steps', with one and with two simulator threads, saved or compared.

    python bench/sim_identity.py --save before.npz [--build DIR] [--steps 4]   # e.g. on an older commit
    python bench/sim_identity.py --compare before.npz [--build DIR]            # prints identical: True/False

Used to check that a change to the simulator keeps its results bit for bit (issue 13).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
PROMPT = np.array([9707, 11, 1246, 525, 498, 30, 358, 1079])


def run(build: Path, threads: int, steps: int) -> list[np.ndarray]:
    """The arrays, in order: prompt hidden, its logits, then each step's hidden and logits."""
    from axc.hostloop import HostLoop
    from axc.sim.executor import AxModelExecutor
    from axc.sim.plan import Workspace

    executor = AxModelExecutor(build, Workspace(threads=threads))
    loop = HostLoop(executor, executor.layout)
    loop.reset()
    hidden = np.asarray(loop.prefill(PROMPT))
    logits = np.asarray(loop.logits(hidden[-1]))
    arrays = [hidden, logits]
    for _ in range(steps):
        hidden = np.asarray(loop.decode_hidden(int(np.argmax(logits))))
        logits = np.asarray(loop.logits(hidden[-1]))
        arrays += [hidden, logits]
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, default=ROOT / "out" / "qwen05b_ax650_kv255")
    parser.add_argument("--steps", type=int, default=4)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path)
    action.add_argument("--compare", type=Path)
    args = parser.parse_args()
    if not (args.build / "post_config.json").is_file():
        sys.exit(f"{args.build}: not a build directory; build it with bench/bench_simulator.py first")
    arrays = {f"t{threads}_{k}": a for threads in (1, 2) for k, a in enumerate(run(args.build, threads, args.steps))}
    if args.save:
        np.savez(args.save, **arrays)
        print(f"saved {len(arrays)} arrays to {args.save}")
        return
    with np.load(args.compare) as before:
        if set(before.files) != set(arrays):
            sys.exit(f"{args.compare}: saved with other --steps")
        same = {name: before[name].tobytes() == a.tobytes() and before[name].shape == a.shape for name, a in arrays.items()}
    for threads in (1, 2):
        names = [n for n in same if n.startswith(f"t{threads}_")]
        print(f"{threads} thread(s): {sum(same[n] for n in names)}/{len(names)} arrays byte-identical")
    print(f"identical: {all(same.values())}")


if __name__ == "__main__":
    main()
