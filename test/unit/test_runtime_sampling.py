"""Sampling from post_config.json as the board runtime applies it, against transformers'
own logits processors (repetition penalty, temperature, top-k, top-p) on random logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from axc.errors import AxcError
from axc.runtime.sampling import PostConfig, Sampler

torch = pytest.importorskip("torch")
generation = pytest.importorskip("transformers.generation.logits_process")

VOCAB = 50
HISTORY = [3, 7, 7, 11, 3, 40, 41, 42]


def logits(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, VOCAB)


def reference(values: np.ndarray, history: list[int], processors: list) -> np.ndarray:
    scores = torch.tensor(values, dtype=torch.float64)[None]
    ids = torch.tensor([history])
    for processor in processors:
        scores = processor(ids, scores)
    return torch.softmax(scores, -1)[0].numpy()


def ours(config: PostConfig, values: np.ndarray, history: list[int]) -> np.ndarray:
    candidates, probs = Sampler(config).distribution(values, history)
    dense = np.zeros(VOCAB)
    dense[candidates] = probs
    return dense


@pytest.mark.parametrize("seed", range(5))
def test_penalty_temperature_top_k_match_transformers(seed: int) -> None:
    config = PostConfig(
        enable_repetition_penalty=True, repetition_penalty=1.3, penalty_window=5,
        enable_temperature=True, temperature=0.7, enable_top_k_sampling=True, top_k=8,
    )
    expected = reference(logits(seed), HISTORY[-5:], [
        generation.RepetitionPenaltyLogitsProcessor(1.3),
        generation.TemperatureLogitsWarper(0.7),
        generation.TopKLogitsWarper(8),
    ])
    np.testing.assert_allclose(ours(config, logits(seed), HISTORY), expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_top_p_wins_over_top_k_and_matches_transformers(seed: int) -> None:
    config = PostConfig(enable_temperature=True, temperature=1.5, enable_top_p_sampling=True, top_p=0.6,
                        enable_top_k_sampling=True, top_k=2)
    expected = reference(logits(seed), HISTORY, [generation.TemperatureLogitsWarper(1.5), generation.TopPLogitsWarper(0.6)])
    np.testing.assert_allclose(ours(config, logits(seed), HISTORY), expected, atol=1e-12)


def test_greedy_cases() -> None:
    values = logits(0)
    best = int(np.argmax(values))
    for config in (
        PostConfig(enable_top_k_sampling=True, top_k=1, enable_temperature=True, temperature=0.9),
        PostConfig(),
        PostConfig(enable_temperature=True, temperature=0.0, enable_top_p_sampling=True, top_p=0.9),
    ):
        assert config.greedy
        assert {Sampler(config, seed).sample(values, []) for seed in range(20)} == {best}


def test_temperature_alone_draws_from_the_whole_distribution() -> None:
    config = PostConfig(enable_temperature=True, temperature=1.0)
    np.testing.assert_allclose(ours(config, logits(1), []), reference(logits(1), [0], []), atol=1e-12)
    draws = {Sampler(config, seed).sample(logits(1), []) for seed in range(200)}
    assert len(draws) > 5


def test_a_seed_repeats_its_draws() -> None:
    config = PostConfig(enable_temperature=True, temperature=1.0, enable_top_k_sampling=True, top_k=20)
    a, b = Sampler(config, 7), Sampler(config, 7)
    assert [a.sample(logits(i), []) for i in range(30)] == [b.sample(logits(i), []) for i in range(30)]


def test_request_settings_as_axllm_serve() -> None:
    shipped = PostConfig(enable_temperature=True, temperature=0.9, enable_top_k_sampling=True, top_k=10,
                         enable_repetition_penalty=True, repetition_penalty=1.2)
    assert shipped.with_request(None, None).greedy
    assert shipped.with_request(None, None).enable_repetition_penalty
    warm = shipped.with_request(0.5, None)
    assert (warm.enable_temperature, warm.temperature, warm.top_k) == (True, 0.5, 10)
    nucleus = shipped.with_request(None, 0.3)
    assert nucleus.enable_top_p_sampling and nucleus.top_p == 0.3


def test_post_config_files(tmp_path: Path) -> None:
    assert PostConfig.load(tmp_path / "missing.json").greedy
    path = tmp_path / "post_config.json"
    path.write_text(json.dumps({"enable_top_k_sampling": True, "top_k": 4, "temperature": 2, "unknown": 1}))
    config = PostConfig.load(path)
    assert (config.top_k, config.temperature) == (4, 2.0)
    for bad, message in (("{", "not readable JSON"), ('{"top_k": "4"}', "top_k must be a int"), ("[1]", "JSON object"),
                         ('{"top_k": -1}', ">= 0")):
        path.write_text(bad)
        with pytest.raises(AxcError, match=message):
            PostConfig.load(path)
