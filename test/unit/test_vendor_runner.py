"""An unchanged vendor-style runner (test/fixtures/vendor_runner/infer_axmodel.py, written
from the runners' behaviour in axengine-api.md: regex file discovery, the `.npy`
embeddings, chunked prefill with the history-0 dummy, decode over the full cache, greedy
post) answers the demo model's held-out sums through `axengine`, as transformers does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from axc.tools.train_demo import greedy_answers, load_heldout  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "demo" / "qwen2-add"
RUNNER = Path(__file__).resolve().parents[1] / "fixtures" / "vendor_runner" / "infer_axmodel.py"
SUMS = 12
"""Held-out sums asked (every 16th of the 200: a real check that stays fast in CI)."""


def test_vendor_runner_answers_the_heldout_sums(runner_build: Path) -> None:
    pairs = [(1, 1), *load_heldout(DEMO)[:: 200 // SUMS][:SUMS]]
    questions = [f"{a}+{b}=" for a, b in pairs]
    command = [sys.executable, str(RUNNER), "--hf_model", str(DEMO), "--axmodel_path", str(runner_build)]
    for question in questions:
        command += ["-q", question]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    answers = re.findall(r"^answer: (.*)$", proc.stdout, re.M)
    torch.set_num_threads(1)
    tokenizer = transformers.AutoTokenizer.from_pretrained(DEMO)
    model = transformers.AutoModelForCausalLM.from_pretrained(DEMO, dtype=torch.float32).eval()
    assert answers == greedy_answers(model, tokenizer, pairs)
    assert answers[0] == "2"
    correct = sum(answer == str(a + b) for answer, (a, b) in zip(answers, pairs))
    print(f"vendor runner through axengine: {correct}/{len(pairs)} sums right; {list(zip(questions, answers))}")
    assert correct >= len(pairs) - 1
