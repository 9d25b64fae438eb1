"""`specialize-groups` differential test: every shape group computes what the symbolic
layer function computes on the same inputs, and the groups follow the runtime contract."""

from __future__ import annotations

import re

import numpy as np
import pytest

from axc.dialects import make_context
from axc.errors import AxcError
from axc.frontend.hf_import import import_hf
from axc.interpreters.runner import ModuleRunner
from axc.passes.specialize_groups import SpecializeGroups, shape_groups


def group_inputs(rng: np.random.Generator, kv_dim: int, hidden: int, tokens: int, history: int):
    mask = np.where(rng.random((1, tokens, history + tokens)) < 0.3, -65536.0, 0.0).astype(np.float32)
    mask[0, :, history:] = 0.0
    return {
        "K_cache": rng.standard_normal((1, history, kv_dim)).astype(np.float32),
        "V_cache": rng.standard_normal((1, history, kv_dim)).astype(np.float32),
        "indices": rng.integers(0, 40, (1, tokens)).astype(np.uint32),
        "input": rng.standard_normal((1, tokens, hidden)).astype(np.float32),
        "mask": mask,
    }


def test_groups_equal_the_symbolic_layer(tiny_model_dir) -> None:
    symbolic = import_hf(tiny_model_dir("qwen2"))
    specialised = symbolic.clone()
    SpecializeGroups(kv_cache_len=24, prefill_len=8, last_kv_cache_len=(8, 16)).apply(
        make_context(), specialised
    )
    before, after = ModuleRunner(symbolic), ModuleRunner(specialised)
    rng = np.random.default_rng(0)
    for group, (tokens, history) in enumerate([(1, 24), (8, 0), (8, 8), (8, 16)]):
        for layer in (0, 1):
            inputs = group_inputs(rng, 32, 64, tokens, history)
            expected = before.call(f"layer_{layer}", inputs)
            if history == 0:
                # The runtime's dummy: [1, 1, hidden], whatever its values (never read).
                dummy = rng.standard_normal((1, 1, 64)).astype(np.float32)
                inputs = {**inputs, "K_cache": dummy, "V_cache": dummy}
            actual = after.call(f"layer_{layer}_g{group}", inputs)
            for a, e in zip(actual, expected, strict=True):
                np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-6)
    hidden = rng.standard_normal((1, 1, 64)).astype(np.float32)
    np.testing.assert_allclose(after.call("post", [hidden])[0], before.call("post", [hidden])[0], rtol=1e-6)


def test_group_histories() -> None:
    """The seed command's ladder is the vendor board log's: grp 1 -> 1 (the dummy row),
    2 -> 128, 3 -> 256, 4 -> 384, 5 -> 512, plus decode."""
    groups = shape_groups(1023, 128, (128, 256, 384, 512))
    assert [(g.index, g.tokens, g.history) for g in groups] == [
        (0, 1, 1023), (1, 128, 0), (2, 128, 128), (3, 128, 256), (4, 128, 384), (5, 128, 512)
    ]
    assert [(g.tokens, g.history) for g in shape_groups(127, 0, ())] == [(1, 127)]
    assert [(g.tokens, g.history) for g in shape_groups(127, 32, ())] == [(1, 127), (32, 0)]
    assert [(g.tokens, g.history) for g in shape_groups(2047, 128, (128, 1024))][-1] == (128, 1024)
    assert [g.history for g in shape_groups(31, 8, (1, 5, 23))] == [31, 0, 1, 5, 23]


@pytest.mark.parametrize(
    ("kv", "prefill", "lasts", "fragment"),
    [
        (127, 200, (), "prefill-len 200 must be in [0, kv-cache-len = 127]"),
        (127, 16, (32, 32), "strictly increasing"),
        (127, 16, (0,), "strictly increasing and at least 1, got [0]"),
        (127, 16, (112,), "last-kv-cache-len 112 + prefill-len 16 exceeds kv-cache-len = 127"),
        (127, 0, (16,), "needs a prefill-len > 0"),
    ],
)
def test_bad_group_options(kv: int, prefill: int, lasts: tuple[int, ...], fragment: str) -> None:
    with pytest.raises(AxcError, match=re.escape(fragment)):
        shape_groups(kv, prefill, lasts)
