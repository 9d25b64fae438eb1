"""The simulator against frozen outputs of the per-tile simulator it replaced
(test/fixtures/sim-golden/make_golden.py): same files, same inputs, the same bytes out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from axc.sim.plan import MatmulStep, Workspace
from axc.sim.session import AxModelSession

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "sim-golden"
FILES = sorted(p.name.removesuffix(".axmodel") for p in GOLDEN.glob("*.axmodel"))


def test_fixtures_are_there() -> None:
    assert len(FILES) == 10


WORKSPACES = {
    "one thread": lambda: Workspace(threads=1),
    "lookahead": lambda: Workspace(threads=2, lookahead_elements=0),  # every run of weight matmuls
    "eager helper": lambda: Workspace(threads=2, lookahead_elements=0, eager_helper=True),  # the helper computes all but one
}


@pytest.mark.parametrize("workspace", WORKSPACES)
@pytest.mark.parametrize("name", FILES)
def test_outputs_are_bit_identical_to_the_frozen_ones(name: str, workspace: str) -> None:
    session = AxModelSession(GOLDEN / f"{name}.axmodel", WORKSPACES[workspace]())
    frozen = np.load(GOLDEN / f"{name}.npz")
    checked = 0
    for group in range(session.group_count()):
        inputs = {t.name: frozen[f"g{group}.in.{t.name}"] for t in session.model.groups[group].inputs}
        for call in range(2):
            outputs = session.run(group, inputs)
            for key, value in outputs.items():
                expected = frozen[f"g{group}.call{call}.out.{key}"]
                assert value.dtype == expected.dtype and value.shape == expected.shape, key
                # Bytes, not values: NaN payloads and signed zeros count too.
                assert value.tobytes() == expected.tobytes(), f"{name} group {group} call {call}: {key} differs"
                checked += 1
    assert checked == sum(1 for k in frozen.files if ".out." in k)


def test_the_lookahead_runs_products_on_the_helper() -> None:
    """Most golden files have runs of weight matmuls that the lookahead shares."""
    split = 0
    for name in FILES:
        session = AxModelSession(GOLDEN / f"{name}.axmodel", Workspace(threads=2, lookahead_elements=0))
        split += sum(bool(session.plan(g).lookaheads) for g in range(session.group_count()))
    assert split >= len(FILES)


def test_the_decode_groups_run_row_blocked_products() -> None:
    """The decode groups of s8 weights (every file of the s8 models, every post model's
    lm_head) take `TileGemv` for their weight matmuls, so the comparisons above cover it;
    the other formats keep the whole-tile product."""
    blocked = {}
    for name in FILES:
        session = AxModelSession(GOLDEN / f"{name}.axmodel", Workspace(threads=1))
        blocked[name] = sum(isinstance(s, MatmulStep) and s.gemv is not None for s in session.plan(0).steps)
    assert all(blocked[name] > 0 for name in FILES if "-s8" in name), blocked
    assert all(blocked[name] > 0 for name in FILES if name.endswith(".post")), blocked
    assert all(blocked[name] == 0 for name in FILES if "-s8" not in name and name.endswith(".layer_0")), blocked
