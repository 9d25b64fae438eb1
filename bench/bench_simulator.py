"""Decode speed of the simulator running a Qwen2.5-0.5B-shaped s8 build, beside
transformers' eager fp32 forward of the same weights, in one process on the same machine.

    python bench/bench_simulator.py [--model DIR] [--tokens 32] [--kv-cache-len 255] [--chip AX650]
                                    [--threads 2] [--repeat 3] [--sim-threads 1|2]

Builds the model first when its directory is missing (`axc-llm-build -c 0`: 24 layer
files + post + the bf16 embedding). The simulator (`axc.sim.AxModelExecutor`, reading only
the files) first builds the execution plans of every group of every file (timed: "plans
ready"), then runs the runtime's host loop (`axc.hostloop.HostLoop`): a short prompt, then
one token per step. transformers runs the same prompt with its KV cache, one token per
step, with `--threads` torch threads (the simulator, on 2+ cores, shares each run of weight
matmuls with a helper thread, one BLAS thread each; `--sim-threads 1`: one thread). The
decode measurements alternate `--repeat` times, so that both see the same machine load; the
ratio of each round is printed. Goal: simulator / transformers >= 1.5
with plans ready in <= 2 s. Also printed, for context: transformers with one thread.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from make_qwen05b import DEFAULT_OUT, ensure  # noqa: E402

PROMPT = np.array([9707, 11, 1246, 525, 498, 30, 358, 1079])
PREFILL = 128


def build(model: Path, out: Path, chip: str, kv: int) -> float:
    """Build `model` with `axc-llm-build -c 0` (the vendor's example groups that fit: a
    history h needs h + prefill <= kv, so kv 255 has the history-0 prefill group only); wall seconds."""
    lasts = [str(n * PREFILL) for n in range(1, 5) if (n + 1) * PREFILL <= kv]
    command = [
        str(Path(sys.executable).with_name("axc-llm-build")),
        "--input_path", str(model), "--output_path", str(out), "--chip", chip,
        "--kv_cache_len", str(kv), "--prefill_len", str(PREFILL), *(["--last_kv_cache_len", *lasts] if lasts else []),
        "--parallel", "2",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


class Simulator:
    """The simulator over a built directory, its plans built up front."""

    def __init__(self, directory: Path, threads: int | None):
        from axc.hostloop import HostLoop
        from axc.sim.executor import AxModelExecutor
        from axc.sim.plan import Workspace

        start = time.perf_counter()
        self.executor = AxModelExecutor(directory, None if threads is None else Workspace(threads=threads))
        self.executor.prepare()
        self.plans_s = time.perf_counter() - start
        self.loop = HostLoop(self.executor, self.executor.layout)

    def run(self, tokens: int) -> tuple[float, float, list[int]]:
        """(decode tokens/s, seconds of the prompt and the first step, the greedy tokens)."""
        loop = self.loop
        loop.reset()
        start = time.perf_counter()
        token = int(np.argmax(loop.logits(loop.prefill(PROMPT)[-1])))
        token = int(np.argmax(loop.logits(loop.decode_hidden(token)[-1])))
        first = time.perf_counter() - start
        generated = [token]
        start = time.perf_counter()
        for _ in range(tokens):
            token = int(np.argmax(loop.logits(loop.decode_hidden(token)[-1])))
            generated.append(token)
        return tokens / (time.perf_counter() - start), first, generated


class Transformers:
    """transformers' eager fp32 model of the checkpoint, KV cache on."""

    def __init__(self, checkpoint: Path):
        import torch
        import transformers

        self.torch = torch
        self.model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
        self.model.eval()

    def run(self, tokens: int, threads: int) -> float:
        torch, model = self.torch, self.model
        torch.set_num_threads(threads)
        with torch.inference_mode():
            out = model(torch.tensor([PROMPT.tolist()]), use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            out = model(token, past_key_values=past, use_cache=True)  # warm-up step
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(tokens):
                out = model(token, past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_OUT, help="the checkpoint (made when missing)")
    parser.add_argument("--build", type=Path, help="the build directory (default: bench/out/<model>_<chip>_kv<N>)")
    parser.add_argument("--chip", default="AX650")
    parser.add_argument("--kv-cache-len", type=int, default=255)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the transformers reference")
    parser.add_argument("--repeat", type=int, default=3, help="alternating measurement rounds")
    parser.add_argument("--sim-threads", type=int, choices=[1, 2], help="the simulator's threads (default: 2 on 2+ cores)")
    args = parser.parse_args()
    if args.model == DEFAULT_OUT:
        ensure(args.model)
    directory = args.build or ROOT / "out" / f"{args.model.name}_{args.chip.lower()}_kv{args.kv_cache_len}"
    if not (directory / "post_config.json").is_file():
        seconds = build(args.model, directory, args.chip, args.kv_cache_len)
        print(f"built {directory} in {seconds:.1f} s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    simulator = Simulator(directory, args.sim_threads)
    print(f"simulator: plans of {len(simulator.executor.layer_files)} layer files + post ready in {simulator.plans_s:.2f} s "
          f"(goal <= 2; {getattr(simulator.executor.workspace, 'threads', 1)} simulator threads, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')})")
    reference = Transformers(args.model)
    ratios, tokens_seen = [], []
    for round_ in range(1, args.repeat + 1):
        sim, first, generated = simulator.run(args.tokens)
        ref = reference.run(args.tokens, args.threads)
        ratios.append(sim / ref)
        tokens_seen.append(generated)
        print(f"round {round_}: simulator {sim:.2f} tokens/s (prompt + first step {first:.1f} s), transformers eager fp32 "
              f"{args.threads} threads {ref:.2f} tokens/s: ratio {sim / ref:.2f}")
    single = reference.run(args.tokens, 1)
    print(f"transformers eager fp32, 1 thread: {single:.2f} tokens/s (context; the ratio uses {args.threads} threads)")
    print(f"ratio simulator / transformers ({args.threads} threads): median {float(np.median(ratios)):.2f} over {args.repeat} "
          f"rounds (min {min(ratios):.2f}, max {max(ratios):.2f}; goal >= 1.5); simulator tokens identical across rounds: "
          f"{all(t == tokens_seen[0] for t in tokens_seen)}")


if __name__ == "__main__":
    main()
