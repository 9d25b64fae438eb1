"""Checks on the shipped demo model ``demo/qwen2-add`` (tiny Qwen2 doing addition)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from axc.tools.train_demo import (  # noqa: E402
    encode,
    greedy_answer,
    greedy_answers,
    load_heldout,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo" / "qwen2-add"


@pytest.fixture(scope="module")
def loaded() -> tuple[Any, Any]:
    """(model, tokenizer) loaded offline from the shipped directory."""
    if not (DEMO / "model.safetensors").exists():
        pytest.skip(f"demo model not found at {DEMO}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    tok = transformers.AutoTokenizer.from_pretrained(DEMO)
    model = transformers.AutoModelForCausalLM.from_pretrained(DEMO, dtype=torch.float32)
    model.eval()
    return model, tok


def test_files_present_and_small() -> None:
    names = {p.name for p in DEMO.iterdir()}
    for f in ("config.json", "generation_config.json", "model.safetensors",
              "tokenizer.json", "tokenizer_config.json", "heldout.json"):
        assert f in names, f
    assert sum(p.stat().st_size for p in DEMO.iterdir()) <= 10 * 1024 * 1024


def test_config_architecture(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    c = model.config
    assert c.model_type == "qwen2"
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers) == (128, 384, 2)
    assert (c.num_attention_heads, c.num_key_value_heads) == (4, 2)
    assert c.tie_word_embeddings
    assert c.vocab_size >= len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id


def test_tokenizer_one_id_per_char(loaded: tuple[Any, Any]) -> None:
    """AutoTokenizer (whatever class it picks) must agree with tokenizer.json."""
    from tokenizers import Tokenizer

    _, tok = loaded
    raw = Tokenizer.from_file(str(DEMO / "tokenizer.json"))
    assert tok.eos_token == "<eos>" and tok.pad_token_id == 0
    ids = tok("1+1=")["input_ids"]
    assert len(ids) == 4 and ids == raw.encode("1+1=").ids
    for a in range(0, 100, 7):
        for b in range(0, 100, 3):
            s = f"{a}+{b}={a + b}"
            got = encode(tok, s)
            assert got == raw.encode(s).ids and len(got) == len(s)
            assert tok.decode(got) == s


def test_one_plus_one(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    assert greedy_answer(model, tok, 1, 1) == "2"


def test_generate_stops_at_eos(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    ids = torch.tensor([encode(tok, "47+85=")])
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True) == "132"
    assert int(out[0, -1]) == tok.eos_token_id


def test_heldout_accuracy(loaded: tuple[Any, Any]) -> None:
    model, tok = loaded
    heldout = load_heldout(DEMO)
    assert len(heldout) == 200 and len(set(heldout)) == 200
    answers = greedy_answers(model, tok, heldout)
    correct = sum(ans == str(a + b) for ans, (a, b) in zip(answers, heldout))
    assert correct / len(heldout) >= 0.95, f"held-out accuracy {correct}/{len(heldout)}"
