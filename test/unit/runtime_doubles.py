"""Wrappers of a real executor for the runtime tests: one for replies longer than the demo
model gives (which stops after a few tokens): EOS is masked and each post call waits; one
that passes the calls through and nothing else (no `cache_dtype`, no `holding`: the host's
fp32 cache and the BLAS limit per plan)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from axc.hostloop import LayerExecutor


@dataclass
class EndlessExecutor:
    executor: LayerExecutor
    eos: int
    delay_s: float = 0.0
    post_calls: int = 0

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        return self.executor.embed(token_ids)

    def run_layer(self, layer: int, group: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.executor.run_layer(layer, group, inputs)

    def post(self, hidden: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        self.post_calls += 1
        logits = np.array(self.executor.post(hidden), np.float32)
        logits[..., self.eos] = -np.inf
        return logits


@dataclass
class PlainExecutor:
    executor: LayerExecutor

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        return self.executor.embed(token_ids)

    def run_layer(self, layer: int, group: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.executor.run_layer(layer, group, inputs)

    def post(self, hidden: np.ndarray) -> np.ndarray:
        return self.executor.post(hidden)
