"""Per-call time of `axengine.InferenceSession.run` against `AxModelSession.run`.

    python bench/bench_axengine.py [--calls 200] [--model demo/qwen2-add]

Builds the model once with the runners' flags (`--kv_cache_len 2047 --prefill_len 128`,
into out/bench_axengine), then runs the same bf16 inputs through both APIs on layer 0's
decode group and its history-0 prefill group, interleaved in rounds so that machine load
hits both alike, and prints the median per-call time of each and their ratio (the goal:
axengine at most 5% slower).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np

from axc.sim.session import AxModelSession
from axengine import InferenceSession

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench_axengine"


def build(model: Path) -> Path:
    layer = OUT / "qwen2_p128_l0_together.axmodel"
    if not layer.is_file():
        tool = Path(sys.executable).with_name("axc-llm-build")
        command = [str(tool), "--input_path", str(model), "--output_path", str(OUT), "--kv_cache_len", "2047", "--prefill_len", "128"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return layer


def feed(session: InferenceSession, group: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    inputs = {}
    for arg in session.get_inputs(group):
        if arg.dtype == np.uint32:
            inputs[arg.name] = np.arange(int(np.prod(arg.shape)), dtype=np.uint32).reshape(arg.shape)
        elif arg.name == "mask":
            inputs[arg.name] = np.zeros(arg.shape, ml_dtypes.bfloat16)
        else:
            inputs[arg.name] = rng.standard_normal(arg.shape).astype(ml_dtypes.bfloat16)
    return inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per API and group (default 200)")
    parser.add_argument("--model", type=Path, default=ROOT / "demo" / "qwen2-add")
    args = parser.parse_args()
    path = build(args.model)
    engine, simulator = InferenceSession(str(path)), AxModelSession(path)
    rng = np.random.default_rng(0)
    for group, label in ((0, "decode (kv 2047)"), (1, "prefill 128, history 0")):
        inputs = feed(engine, group, rng)
        for _ in range(5):  # plans are built on first use
            engine.run(None, inputs, shape_group=group)
            simulator.run(group, inputs)
        times: dict[str, list[float]] = {"AxModelSession": [], "axengine": []}
        rounds = 10
        for _ in range(rounds):
            for name, call in (
                ("AxModelSession", lambda: simulator.run(group, inputs)),
                ("axengine", lambda: engine.run(None, inputs, shape_group=group)),
            ):
                start = time.perf_counter()
                for _ in range(args.calls // rounds):
                    call()
                times[name].append((time.perf_counter() - start) / (args.calls // rounds))
        base, ours = (statistics.median(times[n]) for n in ("AxModelSession", "axengine"))
        print(
            f"group {group} {label}: AxModelSession {base * 1e6:,.0f} us/call, axengine {ours * 1e6:,.0f} us/call, "
            f"ratio {ours / base:.3f}"
        )


if __name__ == "__main__":
    main()
