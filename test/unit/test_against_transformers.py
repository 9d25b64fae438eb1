"""The tfm level, specialised into shape groups and driven by the runtime's host loop,
matches transformers' fp32 forward on a tiny random model of every registered family."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import reference_logits

from axc.dialects import make_context
from axc.frontend.families import FAMILIES
from axc.frontend.hf_import import import_hf
from axc.hostloop import HostLoop
from axc.interpreters.executor import ModuleExecutor
from axc.passes.specialize_groups import SpecializeGroups


def max_relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("prefill_len", [0, 8])
def test_host_loop_matches_transformers(tiny_model_dir, family: str, prefill_len: int) -> None:
    model_dir = tiny_model_dir(family)
    module = import_hf(model_dir)
    lasts = (8, 16, 24) if prefill_len else ()
    SpecializeGroups(kv_cache_len=40, prefill_len=prefill_len, last_kv_cache_len=lasts).apply(
        make_context(), module
    )
    loop = HostLoop(executor := ModuleExecutor(module), executor.layout)
    prompt = np.random.default_rng(1).integers(3, 128, size=19)
    hidden = loop.prefill(prompt)
    ours = [loop.logits(row) for row in hidden]
    tokens = list(map(int, prompt))
    for _ in range(6):
        tokens.append(int(np.argmax(ours[-1])))
        ours.append(loop.logits(loop.decode_hidden(tokens[-1])[-1]))
    reference = reference_logits(model_dir, tokens).numpy()
    worst = 0.0
    for step, logits in enumerate(ours):
        error = max_relative_error(logits, reference[step])
        assert error <= 1e-4, f"step {step}: max relative error {error:.2e}"
        worst = max(worst, error)
    print(f"{family} prefill_len={prefill_len}: worst relative error {worst:.2e}")
