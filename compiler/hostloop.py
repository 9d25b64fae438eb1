"""The host loop of the runtime contract (ax-llm): prefill chunks, KV copies, decode.

The loop is independent of what executes a layer: the tfm/quant interpreters, the npu
interpreter or the simulator running `.axmodel` files all implement `LayerExecutor`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from axc.runtime_contract import INDICES, INPUT, K_CACHE, K_CACHE_OUT, MASK, MASKED, OUTPUT, V_CACHE, V_CACHE_OUT


class LayerExecutor(Protocol):
    """What the host loop drives. An executor may also have `cache_dtype`, the dtype its
    layers take the K/V cache in (the host keeps the cache in it, as the board's runtime
    keeps bf16; default fp32), and `holding()`, a context manager the host holds over the
    layer calls of one prefill chunk or decode step and over one post call."""

    def embed(self, token_ids: np.ndarray) -> np.ndarray:
        """`[T]` ids → `[1, T, hidden]`."""
        ...

    def run_layer(self, layer: int, group: int, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one layer's shape group on the contract's named inputs."""
        ...

    def post(self, hidden: np.ndarray) -> np.ndarray:
        """`[1, 1, hidden]` → logits `[1, 1, vocab]`."""
        ...


def cache_dtype(executor: LayerExecutor) -> np.dtype:
    """The executor's `cache_dtype`, else fp32."""
    return np.dtype(getattr(executor, "cache_dtype", np.float32))


def holding(executor: LayerExecutor) -> Callable[[], AbstractContextManager[object]]:
    """The executor's `holding`, else a context that does nothing."""
    return getattr(executor, "holding", nullcontext)


@dataclass(frozen=True)
class GroupLayout:
    """The shape groups of a built model (the vendor's ladder): `histories[0]` is the
    decode group's cache, `histories[1]` is 0 (a prefill chunk with no history, whose
    `K_cache`/`V_cache` are a `[1, 1, hidden_size]` dummy), then one history per
    `--last_kv_cache_len` value."""

    num_layers: int
    kv_dim: int
    kv_cache_len: int
    prefill_len: int
    histories: tuple[int, ...]
    hidden_size: int

    def prefill_group(self, cached: int) -> int:
        """The first prefill group whose history covers `cached` tokens, as the runtime picks."""
        for group in range(1, len(self.histories)):
            if self.histories[group] >= cached:
                return group
        raise ValueError(f"no prefill group can see {cached} cached tokens (histories {list(self.histories[1:])})")

    @property
    def max_prompt_len(self) -> int:
        """The longest prompt the prefill groups can take (chunks start at multiples of prefill_len)."""
        if self.prefill_len == 0:
            return self.kv_cache_len
        seen = max(self.histories[1:])
        return min(seen // self.prefill_len * self.prefill_len + self.prefill_len, self.kv_cache_len)


@dataclass
class HostLoop:
    """Keeps the KV cache on the host and drives an executor like the runtime does."""

    executor: LayerExecutor
    layout: GroupLayout
    position: int = 0
    k_cache: np.ndarray = field(init=False)
    v_cache: np.ndarray = field(init=False)
    holding: Callable[[], AbstractContextManager[object]] = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.layout.num_layers, self.layout.kv_cache_len, self.layout.kv_dim)
        self.k_cache = np.zeros(shape, cache_dtype(self.executor))
        self.v_cache = np.zeros(shape, cache_dtype(self.executor))
        self.holding = holding(self.executor)

    def reset(self) -> None:
        self.position = 0
        self.k_cache[:] = 0
        self.v_cache[:] = 0

    def prefill_group(self, cached: int) -> int:
        return self.layout.prefill_group(cached)

    def prefill(self, token_ids: np.ndarray) -> np.ndarray:
        """Run the prompt in `prefill_len` chunks; the hidden states `[n, hidden]` of its tokens."""
        layout = self.layout
        if layout.prefill_len == 0:
            return np.concatenate([self.decode_hidden(int(t)) for t in token_ids], axis=0)
        outputs = []
        for start in range(0, len(token_ids), layout.prefill_len):
            chunk = token_ids[start : start + layout.prefill_len]
            outputs.append(self.prefill_chunk(chunk))
        return np.concatenate(outputs, axis=0)

    def prefill_chunk(self, chunk: np.ndarray) -> np.ndarray:
        layout, cached, n = self.layout, self.position, len(chunk)
        tokens = layout.prefill_len
        if cached + n > layout.kv_cache_len:
            raise ValueError(f"context of {cached + n} tokens exceeds kv_cache_len {layout.kv_cache_len}")
        group = self.prefill_group(cached)
        history = layout.histories[group]
        ids = np.zeros(tokens, np.int64)
        ids[:n] = chunk
        hidden = self.executor.embed(ids)
        mask = np.full((1, tokens, history + tokens), MASKED, np.float32)
        mask[0, :, :cached] = 0.0
        mask[0, :, history:][np.tril(np.ones((tokens, tokens), bool))] = 0.0
        indices = (cached + np.arange(tokens, dtype=np.uint32))[None, :]
        dummy = np.zeros((1, 1, layout.hidden_size), np.float32)
        with self.holding():
            for layer in range(layout.num_layers):
                # Rows [cached, history) are masked; the history-0 group's dummy is never read.
                k_hist = self.k_cache[layer, :history][None] if history else dummy
                v_hist = self.v_cache[layer, :history][None] if history else dummy
                out = self.executor.run_layer(
                    layer,
                    group,
                    {K_CACHE: k_hist, V_CACHE: v_hist, INDICES: indices, INPUT: hidden, MASK: mask},
                )
                self.k_cache[layer, cached : cached + n] = out[K_CACHE_OUT][0, :n]
                self.v_cache[layer, cached : cached + n] = out[V_CACHE_OUT][0, :n]
                hidden = np.asarray(out[OUTPUT], np.float32)
        self.position += n
        return hidden[0, :n]

    def decode_hidden(self, token: int) -> np.ndarray:
        """One decode step; the hidden state `[1, hidden]` of `token`."""
        layout, pos = self.layout, self.position
        if pos >= layout.kv_cache_len:
            raise ValueError(f"context is full ({layout.kv_cache_len} tokens)")
        hidden = self.executor.embed(np.array([token]))
        mask = np.full((1, 1, layout.kv_cache_len + 1), MASKED, np.float32)
        mask[0, 0, :pos] = 0.0
        mask[0, 0, -1] = 0.0
        indices = np.array([[pos]], np.uint32)
        with self.holding():
            for layer in range(layout.num_layers):
                out = self.executor.run_layer(
                    layer,
                    0,
                    {
                        K_CACHE: self.k_cache[layer][None],
                        V_CACHE: self.v_cache[layer][None],
                        INDICES: indices,
                        INPUT: hidden,
                        MASK: mask,
                    },
                )
                self.k_cache[layer, pos] = out[K_CACHE_OUT][0, 0]
                self.v_cache[layer, pos] = out[V_CACHE_OUT][0, 0]
                hidden = np.asarray(out[OUTPUT], np.float32)
        self.position += 1
        return hidden[0]

    def logits(self, hidden_row: np.ndarray) -> np.ndarray:
        """Logits `[vocab]` of one hidden state (the post model)."""
        with self.holding():
            return np.asarray(self.executor.post(hidden_row.reshape(1, 1, -1)), np.float32).reshape(-1)

    def generate(
        self,
        prompt: np.ndarray,
        max_new_tokens: int,
        eos: set[int],
        on_first_logits: Callable[[np.ndarray], None] | None = None,
    ) -> list[int]:
        """Greedy generation: prefill the prompt, then decode until EOS or the limit
        (`on_first_logits` sees the logits of the first generated token)."""
        hidden = self.prefill(prompt)
        logits = self.logits(hidden[-1])
        if on_first_logits is not None:
            on_first_logits(logits)
        token = int(np.argmax(logits))
        generated = [token]
        while len(generated) < max_new_tokens and token not in eos and self.position < self.layout.kv_cache_len:
            token = int(np.argmax(self.logits(self.decode_hidden(token)[-1])))
            generated.append(token)
        return generated

