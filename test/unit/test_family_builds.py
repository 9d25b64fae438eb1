"""Every family, built to `.axmodel` files and run through the host loop in the simulator,
against transformers' fp32 forward of a tiny random model (odd shapes: 3 layers, windows
shorter than the prompt, partial rotary, head_dim != hidden / heads where the family has
them). One bf16 build on AX650 and one s8 build on AX620E per family (one of the two for
the already-covered names), cached per session;
the logits are compared at every prompt position (every prefill chunk) and decode step,
and `-c 1` gives each layer file's cosine against the fp32 reference."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from axc.accuracy import Agreement
from axc.hostloop import HostLoop
from axc.llm_build import target
from axc.llm_build.check import check_layers
from axc.llm_build.driver import build
from axc.llm_build.log import BuildLog
from axc.llm_build.options import BuildOptions
from family_models import FAMILY_MODELS, reference_logits

BUILDS = {"bf16": ("AX650", 0.9999), "s8": ("AX620E", 0.999)}
"""weight type → (chip, least logits cosine against transformers)."""
KV, PREFILL, LASTS = 31, 8, (8, 16)
PROMPT, DECODE = 19, 6


def quiet() -> BuildLog:
    return BuildLog(Console(file=io.StringIO(), width=120))


@pytest.fixture(scope="session")
def family_build(tmp_path_factory: pytest.TempPathFactory):
    """`family_build(name, weight_type)`: (build result, model dirs), built once per session."""
    cache: dict[tuple[str, str], tuple[object, Path, Path]] = {}

    def get(name: str, weight_type: str):
        if (name, weight_type) not in cache:
            if (name, None) not in cache:
                cache[(name, None)] = FAMILY_MODELS[name](tmp_path_factory.mktemp(name))  # type: ignore[assignment]
            model_dir, reference_dir = cache[(name, None)]  # type: ignore[misc]
            chip = BUILDS[weight_type][0]
            out = tmp_path_factory.mktemp(f"{name}-{weight_type}") / "out"
            options = BuildOptions(
                input_path=model_dir, output_path=out, kv_cache_len=KV, prefill_len=PREFILL,
                last_kv_cache_len=LASTS, weight_type=weight_type, post_weight_type=weight_type, chip=chip,
            )
            cache[(name, weight_type)] = (build(options, quiet()), model_dir, reference_dir)
        return cache[(name, weight_type)]

    return get


def run_binary(directory: Path, prompt: np.ndarray, decode: int) -> tuple[list[int], list[np.ndarray]]:
    """Greedy tokens and the logits of every prompt position and decode step, from the files."""
    executor = target.open_simulator(directory)
    loop = HostLoop(executor, executor.layout)
    logits = [loop.logits(row) for row in loop.prefill(prompt)]
    tokens = list(map(int, prompt))
    for _ in range(decode):
        tokens.append(int(np.argmax(logits[-1])))
        logits.append(loop.logits(loop.decode_hidden(tokens[-1])[-1]))
    return tokens, logits


def cases() -> list[tuple[str, str]]:
    """Both builds of every family; one of each already-covered name, alternating."""
    item7 = [name for name in FAMILY_MODELS if name.startswith("item7-")]
    return [
        (name, weight_type)
        for name in FAMILY_MODELS
        for weight_type in ([list(BUILDS)[item7.index(name) % 2]] if name in item7 else list(BUILDS))
    ]


@pytest.mark.parametrize("name, weight_type", cases())
def test_family_binary_matches_transformers(family_build, name: str, weight_type: str) -> None:
    result, _, reference_dir = family_build(name, weight_type)
    least = BUILDS[weight_type][1]
    prompt = np.random.default_rng(7).integers(3, 100, size=PROMPT)
    tokens, ours = run_binary(result.directory, prompt, DECODE)
    reference = reference_logits(reference_dir, tokens)
    cosines = [Agreement.of(logits, reference[step]).cosine for step, logits in enumerate(ours)]
    layers = check_layers(result, quiet())
    worst_layer = layers.worst_layer()
    print(
        f"{name} {weight_type} {BUILDS[weight_type][0]}: worst layer cosine {worst_layer.output.cosine:.6f} "
        f"(layer {worst_layer.layer}, {worst_layer.kind}), worst logits cosine vs transformers {min(cosines):.6f} "
        f"over {len(cosines)} steps"
    )
    assert min(cosines) >= least, f"{name} {weight_type}: step {int(np.argmin(cosines))} cosine {min(cosines):.6f}"
    assert worst_layer.output.cosine >= least
