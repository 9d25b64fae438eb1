"""Sampling of the next token on the host, as the board runtime applies `post_config.json`.

Order (ax-llm's post-processing): repetition penalty over the last `penalty_window`
tokens, temperature, then top-p when enabled (it wins over top-k), else top-k, else a draw
from the whole distribution when temperature is on, else argmax. `top_k` 1 and a
temperature <= 0 are greedy.

```python
config = PostConfig.load(Path("out/qwen2/post_config.json"))
token = Sampler(config, seed=0).sample(logits, history=[151644, 872])
```
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from axc.errors import AxcError
from axc.kernels import softmax

POST_CONFIG = "post_config.json"


@dataclass(frozen=True)
class PostConfig:
    """The keys of `post_config.json` (absent keys: the runtime's defaults, all off)."""

    enable_temperature: bool = False
    temperature: float = 1.0
    enable_repetition_penalty: bool = False
    repetition_penalty: float = 1.0
    penalty_window: int = 20
    enable_top_p_sampling: bool = False
    top_p: float = 1.0
    enable_top_k_sampling: bool = False
    top_k: int = 1

    @classmethod
    def from_json(cls, data: Any, where: str) -> PostConfig:
        if not isinstance(data, dict):
            raise AxcError(f"{where}: expected a JSON object of sampling settings")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.type == "bool":
                ok = isinstance(value, bool)
            elif f.type == "int":
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok:
                raise AxcError(f"{where}: {f.name} must be a {f.type}, got {json.dumps(value)[:40]}")
            values[f.name] = float(value) if f.type == "float" else value
        config = cls(**values)
        if config.penalty_window < 0 or config.top_k < 0 or config.repetition_penalty <= 0:
            raise AxcError(f"{where}: penalty_window and top_k must be >= 0 and repetition_penalty > 0")
        return config

    @classmethod
    def load(cls, path: Path) -> PostConfig:
        """The directory's settings; greedy when the file is missing."""
        if not path.is_file():
            return cls(enable_top_k_sampling=True, top_k=1)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise AxcError(f"{path}: not readable JSON ({error}); rebuild or fix the file") from None
        return cls.from_json(data, str(path))

    def with_request(self, temperature: float | None, top_p: float | None) -> PostConfig:
        """An OpenAI request's settings (as `axllm serve`): neither given is greedy; a given
        temperature/top_p replaces the file's and turns it on (penalties stay)."""
        if temperature is None and top_p is None:
            return replace(self, enable_temperature=False, enable_top_p_sampling=False, enable_top_k_sampling=True, top_k=1)
        config = self
        if temperature is not None:
            config = replace(config, enable_temperature=True, temperature=temperature)
        if top_p is not None:
            config = replace(config, enable_top_p_sampling=True, top_p=top_p)
        return config

    @property
    def greedy(self) -> bool:
        if self.enable_temperature and self.temperature <= 0:
            return True
        if self.enable_top_p_sampling:
            return False
        if self.enable_top_k_sampling:
            return self.top_k <= 1
        return not self.enable_temperature


@dataclass
class Sampler:
    """Draws next tokens under one `PostConfig` with its own random stream."""

    config: PostConfig
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def penalize(self, logits: np.ndarray, history: list[int]) -> np.ndarray:
        c = self.config
        if not c.enable_repetition_penalty or c.repetition_penalty == 1.0 or not history or c.penalty_window == 0:
            return logits
        seen = np.unique(np.asarray(history[-c.penalty_window :], np.int64))
        seen = seen[(seen >= 0) & (seen < logits.size)]
        values = logits[seen]
        logits = logits.copy()
        logits[seen] = np.where(values > 0, values / c.repetition_penalty, values * c.repetition_penalty)
        return logits

    def distribution(self, logits: np.ndarray, history: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The candidate ids and their probabilities (one id with probability 1 when greedy)."""
        c = self.config
        logits = self.penalize(np.asarray(logits, np.float64).reshape(-1), history)
        if c.greedy:
            return np.array([int(np.argmax(logits))]), np.ones(1)
        if c.enable_temperature:
            logits = logits / c.temperature
        if c.enable_top_p_sampling:
            order = np.argsort(-logits, kind="stable")
            probs = softmax(logits[order])
            keep = min(int(np.searchsorted(np.cumsum(probs), c.top_p)) + 1, len(order))
            candidates, weights = order[:keep], probs[:keep]
        elif c.enable_top_k_sampling:
            order = np.argsort(-logits, kind="stable")[: min(c.top_k, logits.size)]
            candidates, weights = order, softmax(logits[order])
        else:
            candidates, weights = np.arange(logits.size), softmax(logits)
        return candidates, weights / weights.sum()

    def sample(self, logits: np.ndarray, history: list[int]) -> int:
        """The next token for `logits` `[vocab]` after the tokens `history`."""
        candidates, probs = self.distribution(logits, history)
        if len(candidates) == 1:
            return int(candidates[0])
        return int(candidates[self.rng.choice(len(candidates), p=probs)])
