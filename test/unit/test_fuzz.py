"""The fuzz harness (`axc-fuzz`): a few hundred seeded trials per reader find no traceback
and no hang, and the harness itself tells every outcome apart (a hang is killed, a crash
restarts the worker, the inputs of findings are saved and replay)."""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from axc.errors import AxcError, report_errors
from axc.tools.axc_fuzz import FINDINGS, READERS, SEEDS, Reader, fuzz, prepare, run_trial, trial_input

TRIALS = 200


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare(tmp_path_factory.mktemp("fuzz"))


# Two halves of about equal cost, one worker process each (xdist runs them side by side).
HALVES = {
    "parse-and-run": ("safetensors-data", "config", "model-config", "axmodel-sim", "serve", "tokenizer-plain"),
    "import-and-opt": ("ir", "bin", "bin-legacy", "safetensors-header", "axmodel-import", "tokenizer-uid"),
}


def test_halves_cover_every_reader() -> None:
    assert sorted(sum(HALVES.values(), ())) == sorted(READERS)


@pytest.mark.parametrize("half", list(HALVES))
def test_no_traceback_no_hang(half: str, corpus: Path, tmp_path: Path) -> None:
    readers = [READERS[name] for name in HALVES[half]]
    report = fuzz(readers, TRIALS, corpus, seed=14, limit=30.0, findings_dir=tmp_path)
    assert not report.findings, f"{report.counts}; first finding (saved under {tmp_path}):\n{report.findings[0]}"
    for reader in readers:
        counts = report.counts[reader.name]
        assert counts["ok"] and counts["refused"], f"{reader.name}: the mutations reach nothing or refuse nothing: {counts}"
        assert sum(counts.values()) == TRIALS


# --- the harness on a fake tool, one outcome per input ---------------------------------------

OUTCOMES = {b"ok": "ok", b"refuse": "refused", b"boom": "traceback", b"noise": "bad-error", b"sleep": "hang", b"die": "crash"}


@report_errors("fake")
def fake_main() -> None:
    what = Path("input.txt").read_bytes()
    if what == b"refuse":
        raise AxcError("refused")
    if what == b"boom":
        raise ValueError("a bug")
    if what == b"noise":
        print("two\nlines", file=sys.stderr)
        sys.exit(3)
    if what == b"sleep":
        time.sleep(600)
    if what == b"die":
        os._exit(9)
    if what in CLASSIFIED:
        raise_or_print(what)


CLASSIFIED = {  # how the harness sorts the subtler outcomes (no hang or crash: run in-process)
    b"traceback-exit-0": "traceback", b"traceback-on-stdout": "traceback", b"carriage-return": "bad-error",
    b"form-feed": "bad-error", b"empty-message": "bad-error", b"output-left": "bad-error", b"exit-2": "bad-error",
    b"refuse": "refused", b"ok": "ok",
}


def raise_or_print(what: bytes) -> None:
    if what == b"traceback-exit-0":
        print("Traceback (most recent call last):\n  ...", file=sys.stderr)
    elif what == b"traceback-on-stdout":
        print("Traceback (most recent call last):\n  ...")
        raise AxcError("refused")
    elif what in (b"carriage-return", b"form-feed"):
        raise AxcError("one\rline" if what == b"carriage-return" else "one\x0cline")
    elif what == b"empty-message":
        raise AxcError(" ")
    elif what == b"output-left":
        Path("out.mlir").write_text("half")
        raise AxcError("refused")
    elif what == b"exit-2":
        print("fake: error: one line", file=sys.stderr)
        sys.exit(2)


def fake_mutate(data: bytes, rng: random.Random) -> bytes:
    return rng.choice(list(OUTCOMES))


FAKE = Reader("fake", "fake", "input.txt", (), fake_mutate, entry="test_fuzz:fake_main")


def test_harness_outcomes(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / SEEDS).mkdir(parents=True)
    for path in (corpus / "input.txt", corpus / SEEDS / "input.txt"):
        path.write_bytes(b"ok")
    trials = 14
    expected = Counter(OUTCOMES[trial_input(FAKE, corpus, 3, t)] for t in range(trials))
    assert expected["hang"] and expected["crash"] and expected["traceback"], expected  # seed 3 has them all
    report = fuzz([FAKE], trials, corpus, seed=3, limit=1.0, findings_dir=tmp_path / "findings")
    assert report.counts["fake"] == expected
    saved = sorted((tmp_path / "findings" / "fake").glob("*.txt"))
    assert len(saved) == sum(expected[k] for k in FINDINGS) == len(report.findings)
    traceback_case = next(f for f in report.findings if f[2] == "traceback")
    assert "ValueError: a bug" in traceback_case[3]
    replayed = (tmp_path / "findings" / "fake" / f"3-{traceback_case[1]}.txt").read_text()
    assert "ValueError: a bug" in replayed and "axc-fuzz --replay" in replayed
    assert (corpus / "input.txt").read_bytes() == b"ok"  # the seed is back after every trial


@pytest.mark.parametrize("what", list(CLASSIFIED))
def test_harness_classification(tmp_path: Path, what: bytes) -> None:
    """A traceback anywhere, a line break of any kind, an empty message, an exit code other
    than 1 or a refusal that leaves output behind is a finding; the output is cleaned up."""
    (tmp_path / SEEDS).mkdir()
    (tmp_path / SEEDS / "input.txt").write_bytes(b"ok")
    outcome, detail = run_trial(FAKE, what, tmp_path)
    assert outcome == CLASSIFIED[what], detail
    assert not (tmp_path / "out.mlir").exists()
    if what == b"output-left":
        assert "left out.mlir" in detail


def test_trials_are_reproducible(corpus: Path) -> None:
    reader = READERS["config"]
    assert trial_input(reader, corpus, 5, 17) == trial_input(reader, corpus, 5, 17)
    assert trial_input(reader, corpus, 5, 17) != trial_input(reader, corpus, 5, 18)
    assert run_trial(reader, (corpus / SEEDS / reader.target).read_bytes(), corpus)[0] == "ok"
