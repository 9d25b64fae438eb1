"""Time to first token and tokens/s of `axc-serve` beside `axc-chat` on the Qwen2.5-0.5B-shaped
build in the simulator: what the HTTP server adds (goal: <= 5%).

    python bench/bench_serve.py [--model CHECKPOINT] [--build DIR] [--prompts 3] [--tokens 12] [--prompt-tokens 100]

Builds the model first when missing (bench/bench_simulator.py's build: 24 layer files,
context 383, chunks of 128) and, since the random checkpoint ships no tokenizer, writes a
word-level tokenizer over the model's 151936 ids with a ChatML template into the build.
The same sequence of distinct prompts (greedy, `--tokens` new tokens each) runs through
the engine as `axc-chat` drives it (in this process) and through `axc-serve` (a subprocess,
streamed over loopback by an httpx client), alternating; TTFT is the time to the first
streamed text and tokens/s the rate of the following ones, as a user of either sees them.
Both start warm (one request first builds the execution plans). On a loaded machine the
two runs see different load, so the server's own cost is also taken within each request:
what the client sees against the engine's figures inside the server (the usage chunk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_simulator import build  # noqa: E402
from make_qwen05b import DEFAULT_OUT, QWEN05B, ensure  # noqa: E402

SPECIAL = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
)
ROLES = ("system", "user", "assistant")
START_TIMEOUT_S = 600
KV_CACHE_LEN = 383
"""Context of the build: groups decode, history 0 and history 128 (chunks of 128)."""


def write_tokenizer(directory: Path) -> None:
    """A word-level tokenizer `w<id>` over the whole vocabulary, ChatML template (once)."""
    if (directory / "tokenizer.json").is_file():
        return
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(QWEN05B["vocab_size"])}
    for word, index in zip(ROLES, range(3)):
        vocab[word] = index
        del vocab[f"w{index}"]
    for token, index in SPECIAL.items():
        del vocab[f"w{index}"]
        vocab[token] = index
    vocab["<unk>"] = vocab.pop("w3")
    model = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    model.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=model, unk_token="<unk>", eos_token="<|im_end|>", chat_template=CHATML)
    fast.add_special_tokens({"additional_special_tokens": list(SPECIAL)})
    fast.save_pretrained(str(directory))


def prompts(count: int, length: int) -> list[list[dict[str, str]]]:
    rng = np.random.default_rng(0)
    return [[{"role": "user", "content": " ".join(f"w{i}" for i in rng.integers(1000, 150000, length))}] for _ in range(count)]


def timed(pieces) -> tuple[float, float, int]:
    """TTFT (s) and tokens/s of an iterator of text pieces, from the caller's side."""
    start = time.perf_counter()
    stamps = [time.perf_counter() for piece in pieces if piece]
    ttft = stamps[0] - start
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return ttft, rate, len(stamps)


class Chat:
    """The engine as axc-chat drives it."""

    def __init__(self, directory: Path, tokens: int):
        from axc.runtime.engine import Engine
        from axc.runtime.sampling import PostConfig, Sampler
        from axc.runtime.tokenizer import ChatTokenizer

        self.engine, self.tokenizer = Engine(directory), ChatTokenizer.load(directory)
        self.sampler, self.tokens = Sampler(PostConfig(enable_top_k_sampling=True, top_k=1)), tokens

    def run(self, messages: list[dict[str, str]]) -> tuple[float, float, int]:
        from axc.runtime.chat import generate

        return timed(generate(self.engine, self.tokenizer, messages, self.sampler, self.tokens))


class Serve:
    """axc-serve in a subprocess, streamed to an httpx client."""

    def __init__(self, directory: Path, tokens: int):
        import httpx

        tool = Path(sys.executable).with_name("axc-serve")
        self.process = subprocess.Popen([str(tool), str(directory), "--port", "0"], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        banner = self.process.stdout.readline()
        match = re.search(r"(http://[\d.]+:\d+)/v1", banner)
        if not match:
            self.process.kill()
            raise SystemExit(f"axc-serve did not start: {banner!r}")
        self.client = httpx.Client(base_url=match.group(1), timeout=START_TIMEOUT_S)
        self.tokens = tokens
        self.engine: list[tuple[float, float]] = []
        """The server's own engine figures of each request (what axc-chat reports)."""

    def pieces(self, messages: list[dict[str, str]]):
        body = {"messages": messages, "stream": True, "max_tokens": self.tokens, "stream_options": {"include_usage": True}}
        with self.client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    if "axc" in chunk:
                        self.engine.append((chunk["axc"]["ttft_ms"] / 1e3, chunk["axc"]["tokens_per_s"]))
                    choices = chunk["choices"]
                    if choices and choices[0]["delta"].get("content"):
                        yield choices[0]["delta"]["content"]

    def run(self, messages: list[dict[str, str]]) -> tuple[float, float, int]:
        return timed(self.pieces(messages))

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_OUT, help="the checkpoint (made when missing)")
    parser.add_argument("--build", type=Path, default=ROOT / "out" / f"qwen05b_ax650_kv{KV_CACHE_LEN}", help="build directory (made when missing)")
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=12)
    parser.add_argument("--prompt-tokens", type=int, default=100)
    args = parser.parse_args()
    if not (args.build / "post_config.json").is_file():
        model = ensure(args.model) if args.model == DEFAULT_OUT else args.model
        print(f"built {args.build} in {build(model, args.build, 'AX650', KV_CACHE_LEN):.1f} s")
    write_tokenizer(args.build)
    work = prompts(args.prompts + 1, args.prompt_tokens)
    chat, serve = Chat(args.build, args.tokens), Serve(args.build, args.tokens)
    try:
        chat.run(work[0])
        serve.run(work[0])  # warm-up: execution plans of every group used
        results: dict[str, list[tuple[float, float, int]]] = {"axc-chat": [], "axc-serve": []}
        for messages in work[1:]:
            results["axc-chat"].append(chat.run(messages))
            results["axc-serve"].append(serve.run(messages))
    finally:
        serve.close()
    ttft = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    rate = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    for key in results:
        runs = ", ".join(f"{t * 1e3:.0f} ms / {r:.2f} tok/s ({n} pieces)" for t, r, n in results[key])
        print(f"{key:>9}: TTFT {ttft[key] * 1e3:8.1f} ms, {rate[key]:6.3f} tokens/s (median of {len(results[key])}: {runs})")
    print(f"axc-serve vs axc-chat (separate runs, alternating): TTFT {100 * (ttft['axc-serve'] / ttft['axc-chat'] - 1):+.1f}%, "
          f"tokens/s {100 * (1 - rate['axc-serve'] / rate['axc-chat']):+.1f}% slower (goal <= 5%)")
    inner = serve.engine[1:]  # the measured requests; [0] was the warm-up
    ttft_cost = statistics.median(r[0] / e[0] - 1 for r, e in zip(results["axc-serve"], inner))
    rate_cost = statistics.median(1 - r[1] / e[1] for r, e in zip(results["axc-serve"], inner) if e[1] > 0)
    print(f"server overhead within each request (client-observed vs the engine inside axc-serve, the figures axc-chat "
          f"prints): TTFT {100 * ttft_cost:+.2f}%, tokens/s {100 * rate_cost:+.2f}% (goal <= 5%)")


if __name__ == "__main__":
    main()
