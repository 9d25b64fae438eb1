"""The model of a built directory on the simulator, one generation at a time, with the
board runtime's KV-cache reuse: a prompt that extends what the cache holds prefills only
its new tokens (a chat's new turn).

```python
engine = Engine(Path("out/qwen2"))
run = engine.start(prompt_ids, Sampler(PostConfig.load(path)), max_new_tokens=64, stop_ids={2})
while (token := run.step()) is not None:
    print(token)
run.stats.ttft_s, run.stats.tokens_per_s, run.stats.finish_reason
```
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axc.errors import AxcError
from axc.hostloop import GroupLayout, HostLoop, LayerExecutor, cache_dtype, holding
from axc.runtime.sampling import Sampler
from axc.sim.executor import AxModelExecutor

BUILD_REPORT = "build_report.json"


class ContextFull(AxcError):
    """A prompt longer than the build's groups can prefill or its KV cache can hold."""


@dataclass(frozen=True)
class BoardFigures:
    """The cost model's latencies of the build (from `build_report.json`): per shape group,
    all layers and the post model."""

    chip: str
    group_ms: tuple[float, ...]
    post_ms: float

    @classmethod
    def load(cls, directory: Path) -> BoardFigures | None:
        try:
            report = json.loads((directory / BUILD_REPORT).read_text())
            predicted = report["predictions"]
            labels = [g["label"] for g in next(iter(predicted["layers"].values()))]
            model = predicted["model"]
            chunks = model.get("prefill_ms_per_chunk", {})
            group_ms = (float(model["decode_ms_per_token"]), *(float(chunks[label]) for label in labels[1:]))
            return cls(str(report["effective"]["chip"]), group_ms, float(predicted["post"][0]["latency_ms"]))
        except (OSError, ValueError, KeyError, TypeError, IndexError, StopIteration, AttributeError):
            return None

    def ttft_ms(self, groups: list[int]) -> float:
        """Prefill over `groups` (one entry per chunk, or per token of a decode-only build),
        the post model once."""
        return sum(self.group_ms[g] - self.post_ms for g in groups) + self.post_ms

    @property
    def tokens_per_s(self) -> float:
        return 1e3 / self.group_ms[0]


@dataclass
class GroupTrace:
    """Passes calls through, noting the shape group of every layer-0 call."""

    executor: LayerExecutor
    groups: list[int] = field(default_factory=list)

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        return self.executor.embed(token_ids)

    def run_layer(self, layer: int, group: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if layer == 0:
            self.groups.append(group)
        return self.executor.run_layer(layer, group, inputs)

    def post(self, hidden: np.ndarray) -> np.ndarray:
        return self.executor.post(hidden)

    @property
    def cache_dtype(self) -> np.dtype:
        return cache_dtype(self.executor)

    def holding(self) -> AbstractContextManager[object]:
        return holding(self.executor)()


@dataclass
class GenerationStats:
    prompt_tokens: int
    reused_tokens: int
    completion_tokens: int = 0
    ttft_s: float = 0.0
    decode_s: float = 0.0
    finish_reason: str | None = None
    prefill_groups: list[int] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        """Decode speed: tokens after the first over the time spent decoding them."""
        steps = self.completion_tokens - 1
        return steps / self.decode_s if steps > 0 and self.decode_s > 0 else 0.0


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n


class Engine:
    """The directory's executor, host loop and the ids whose KV rows the cache holds."""

    def __init__(self, directory: Path, executor: LayerExecutor | None = None, layout: GroupLayout | None = None):
        self.directory = directory
        if executor is None:
            simulator = AxModelExecutor(directory)
            executor, layout = simulator, simulator.layout
        if layout is None:
            raise AxcError("an executor needs its group layout")
        self.trace = GroupTrace(executor)
        self.loop = HostLoop(self.trace, layout)
        self.cached: list[int] = []
        self.figures = BoardFigures.load(directory)

    @property
    def layout(self) -> GroupLayout:
        return self.loop.layout

    def fits(self, start: int, count: int) -> bool:
        """Can `count` tokens be prefilled after `start` cached ones (chunk by chunk)?"""
        layout = self.layout
        if start + count > layout.kv_cache_len or count <= 0:
            return False
        if layout.prefill_len == 0:
            return True
        seen = max(layout.histories[1:])  # the host loop picks the first group whose history covers the cache
        return all(s <= seen for s in range(start, start + count, layout.prefill_len))

    def max_prompt_tokens(self) -> int:
        n = self.layout.kv_cache_len
        while n > 0 and not self.fits(0, n):
            n -= 1
        return n

    def reset(self) -> None:
        self.loop.position = 0
        self.cached = []

    def start(self, prompt: list[int], sampler: Sampler, max_new_tokens: int, stop_ids: set[int]) -> Generation:
        """Place `prompt` in the cache, reusing its longest cached prefix (raises ContextFull)."""
        if not prompt:
            raise AxcError("the prompt has no tokens")
        reuse = min(common_prefix(self.cached, prompt), len(prompt) - 1, self.loop.position)
        if not self.fits(reuse, len(prompt) - reuse):
            reuse = 0
            if not self.fits(0, len(prompt)):
                raise ContextFull(
                    f"the prompt is {len(prompt)} tokens; this build takes at most {self.max_prompt_tokens()} "
                    f"(kv_cache_len {self.layout.kv_cache_len}); start a new conversation or shorten it"
                )
        self.loop.position = reuse
        self.cached = self.cached[:reuse]
        return Generation(self, prompt, reuse, sampler, max_new_tokens, stop_ids)


@dataclass
class Generation:
    """One generation, a token per `step()` (None once finished; see `stats`)."""

    engine: Engine
    prompt: list[int]
    reused: int
    sampler: Sampler
    max_new_tokens: int
    stop_ids: set[int]
    tokens: list[int] = field(default_factory=list)
    stats: GenerationStats = field(init=False)

    def __post_init__(self) -> None:
        self.stats = GenerationStats(len(self.prompt), self.reused)

    @property
    def done(self) -> bool:
        return self.stats.finish_reason is not None

    def finish(self, reason: str) -> None:
        if self.stats.finish_reason is None:
            self.stats.finish_reason = reason

    def step(self) -> int | None:
        if self.done:
            return None
        if len(self.tokens) >= self.max_new_tokens:
            self.finish("length")
            return None
        engine, loop = self.engine, self.engine.loop
        start = time.perf_counter()
        if not self.tokens:
            engine.trace.groups.clear()
            new = self.prompt[self.reused :]
            try:
                hidden = loop.prefill(np.asarray(new, np.int64))
            except ValueError as error:  # the host loop's own bound: drop the cache
                engine.reset()
                raise ContextFull(str(error)) from None
            engine.cached = engine.cached + new
            self.stats.prefill_groups = list(engine.trace.groups)
        else:
            if loop.position >= engine.layout.kv_cache_len:
                self.finish("length")
                return None
            hidden = loop.decode_hidden(self.tokens[-1])
            engine.cached.append(self.tokens[-1])
        token = self.sampler.sample(loop.logits(hidden[-1]), engine.cached)
        elapsed = time.perf_counter() - start
        if self.tokens:
            self.stats.decode_s += elapsed
        else:
            self.stats.ttft_s = elapsed
        if token in self.stop_ids:
            self.finish("stop")
            return None
        self.tokens.append(token)
        self.stats.completion_tokens = len(self.tokens)
        return token

    def board_ttft_ms(self) -> float | None:
        figures = self.engine.figures
        return None if figures is None else figures.ttft_ms(self.stats.prefill_groups)


def describe(stats: GenerationStats, figures: BoardFigures | None) -> list[str]:
    """The runtime's `ttft` and `token/s` lines, with the cost model's board figures."""
    end = "hit eos" if stats.finish_reason == "stop" else "reach max token len"
    lines = [
        f"ttft: {stats.ttft_s * 1e3:.2f} ms (simulator; {stats.prompt_tokens - stats.reused_tokens} of "
        f"{stats.prompt_tokens} prompt tokens prefilled, {stats.reused_tokens} reused from the KV cache)",
        f"{end},avg {stats.tokens_per_s:.2f} token/s (simulator)",
    ]
    if figures is not None:
        lines.append(
            f"board (cost model, {figures.chip}): ttft {figures.ttft_ms(stats.prefill_groups):.4g} ms, "
            f"{figures.tokens_per_s:.4g} token/s"
        )
    return lines


def describe_json(stats: GenerationStats, figures: BoardFigures | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ttft_ms": stats.ttft_s * 1e3, "tokens_per_s": stats.tokens_per_s, "reused_tokens": stats.reused_tokens,
    }
    if figures is not None:
        data["board"] = {"chip": figures.chip, "ttft_ms": figures.ttft_ms(stats.prefill_groups), "tokens_per_s": figures.tokens_per_s}
    return data
