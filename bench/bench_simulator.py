"""Decode speed of the simulator running a Qwen2.5-0.5B-shaped s8 build, beside
transformers' eager fp32 forward of the same weights on the same machine.

    python bench/bench_simulator.py [--model DIR] [--tokens 32] [--kv-cache-len 255] [--chip AX650]

Builds the model first when its directory is missing (`axc-llm-build -c 0`: 24 layer
files + post + the bf16 embedding), then runs the runtime's host loop
(`axc.hostloop.HostLoop`) over `axc.sim.AxModelExecutor`: a short prompt, then one token
per step; the first step builds the execution plans and is timed separately. transformers
runs the same prompt with its KV cache, one token per step, once with torch's default
threads and once with one thread; the ratio uses the faster of the two. Goal: simulator
tokens/s / transformers tokens/s >= 1 (>= 0.5 required).
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
    """Build `model` with `axc-llm-build -c 0` (the vendor's example groups); wall seconds."""
    lasts = [str(n * PREFILL) for n in range(1, 5) if (n + 1) * PREFILL <= kv]
    command = [
        str(Path(sys.executable).with_name("axc-llm-build")),
        "--input_path", str(model), "--output_path", str(out), "--chip", chip,
        "--kv_cache_len", str(kv), "--prefill_len", str(PREFILL), "--last_kv_cache_len", *lasts,
        "--parallel", "2",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def simulator(directory: Path, tokens: int) -> tuple[float, float, list[int]]:
    from axc.hostloop import HostLoop
    from axc.sim.executor import AxModelExecutor

    executor = AxModelExecutor(directory)
    loop = HostLoop(executor, executor.layout)
    start = time.perf_counter()
    hidden = loop.prefill(PROMPT)
    token = int(np.argmax(loop.logits(hidden[-1])))
    first = loop.logits(loop.decode_hidden(token)[-1])  # builds the decode plans
    warm = time.perf_counter() - start
    token = int(np.argmax(first))
    generated = [token]
    start = time.perf_counter()
    for _ in range(tokens):
        token = int(np.argmax(loop.logits(loop.decode_hidden(token)[-1])))
        generated.append(token)
    return tokens / (time.perf_counter() - start), warm, generated


def transformers_speed(checkpoint: Path, tokens: int, threads: int | None) -> float:
    import torch
    import transformers

    if threads:
        torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    model.eval()
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
    args = parser.parse_args()
    if args.model == DEFAULT_OUT:
        ensure(args.model)
    directory = args.build or ROOT / "out" / f"{args.model.name}_{args.chip.lower()}_kv{args.kv_cache_len}"
    if not (directory / "post_config.json").is_file():
        seconds = build(args.model, directory, args.chip, args.kv_cache_len)
        print(f"built {directory} in {seconds:.1f} s")
    import torch

    default_threads = torch.get_num_threads()
    sim, warm, generated = simulator(directory, args.tokens)
    print(f"simulator: {sim:.2f} tokens/s over {args.tokens} decode steps (plans built in {warm:.1f} s; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')})")
    reference = {}
    for threads in (None, 1):
        label = f"{default_threads} threads (default)" if threads is None else "1 thread"
        reference[label] = transformers_speed(args.model, args.tokens, threads)
        print(f"transformers eager fp32 + KV cache, {label}: {reference[label]:.2f} tokens/s")
    best_label = max(reference, key=reference.__getitem__)
    ratio = sim / reference[best_label]
    print(f"ratio simulator / transformers (best: {best_label}): {ratio:.2f} (goal >= 1, required >= 0.5)")
    for label, speed in reference.items():
        print(f"  vs transformers with {label}: {sim / speed:.2f}")


if __name__ == "__main__":
    main()
