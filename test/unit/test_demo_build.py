"""The shipped demo model, built by `axc-llm-build` and answered by the simulator running the
emitted `.axmodel` files (what `make demo` does, over all 200 held-out sums)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from axc.llm_build.check import check_prompt
from axc.llm_build.driver import BuildResult, build
from axc.llm_build.log import BuildLog
from axc.llm_build.options import BuildOptions
from axc.llm_build.target import open_simulator
from axc.hostloop import HostLoop

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from axc.tools.train_demo import encode, greedy_answers, load_heldout  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "demo" / "qwen2-add"
MAX_NEW_TOKENS = 5


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    options = BuildOptions(
        input_path=DEMO, output_path=tmp_path_factory.mktemp("demo") / "out", kv_cache_len=15, prefill_len=8, prompt="1+1="
    )
    return build(options, BuildLog(Console(file=io.StringIO())))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return transformers.AutoTokenizer.from_pretrained(DEMO)


def simulated_answers(result: BuildResult, tokenizer: Any, pairs: list[tuple[int, int]]) -> list[str]:
    simulator = open_simulator(result.directory)
    loop = HostLoop(simulator, simulator.layout)
    answers = []
    for a, b in pairs:
        loop.reset()
        ids = loop.generate(np.array(encode(tokenizer, f"{a}+{b}=")), MAX_NEW_TOKENS, {tokenizer.eos_token_id})
        if tokenizer.eos_token_id in ids:
            ids = ids[: ids.index(tokenizer.eos_token_id)]
        answers.append(tokenizer.decode(ids, skip_special_tokens=True))
    return answers


def test_one_plus_one(demo_build: BuildResult) -> None:
    log = BuildLog(Console(file=io.StringIO(), width=120))
    run = check_prompt(demo_build, log)
    assert run.text == "2" and run.agree
    assert run.top[0][1] == "2" and run.top[0][2] > 0.5
    assert "simulated .axmodel answers '1+1=' with '2'" in log.console.file.getvalue()  # type: ignore[attr-defined]


def test_heldout_accuracy_of_the_built_model(demo_build: BuildResult, tokenizer: Any) -> None:
    pairs = load_heldout(DEMO)
    assert len(pairs) == 200
    got = simulated_answers(demo_build, tokenizer, pairs)
    torch.set_num_threads(1)
    model = transformers.AutoModelForCausalLM.from_pretrained(DEMO, dtype=torch.float32).eval()
    reference = greedy_answers(model, tokenizer, pairs, MAX_NEW_TOKENS)
    correct = sum(answer == str(a + b) for answer, (a, b) in zip(got, pairs)) / len(pairs)
    agree = sum(x == y for x, y in zip(got, reference)) / len(pairs)
    print(f"built demo model on 200 held-out sums: {correct:.1%} correct, {agree:.1%} agree with transformers")
    assert correct >= 0.95, f"{correct:.1%} correct"
    assert agree >= 0.99, f"{agree:.1%} agree with transformers"
