"""`axc-run` end to end: the console scripts' outputs equal `ModuleRunner` in-process.

    axc-translate --import-hf test/fixtures/tiny-qwen2 -o tiny.mlir
    axc-opt tiny.mlir -p 'specialize-groups{...}' -o groups.mlir
    axc-run groups.mlir --func layer_0_g<k> --input NAME=FILE.npy ... --output-dir out/

The inputs follow the runtime's contract (docs/pipeline.md, ax-llm-contract.md): a
cache with `pos` filled rows, `-65536` = masked, the decode mask's last entry = current
token; prefill group 1 has no history (its caches are a `[1, 1, hidden]` dummy) and group
1+j sees `last_kv_cache_len[j-1]` cached rows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from axc.interpreters.runner import ModuleRunner
from axc.textio import read_module

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny-qwen2"
BIN = Path(sys.executable).parent
KV_CACHE_LEN, PREFILL_LEN, LASTS = 31, 8, (8, 16)
HISTORIES = (KV_CACHE_LEN, 0, *LASTS)
HIDDEN, KV_DIM = 16, 8  # tiny-qwen2: hidden_size 16, 1 KV head of 8
MASKED = -65536.0


def run_tool(tool: str, *args: str | Path, cwd: Path) -> str:
    proc = subprocess.run([str(BIN / tool), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{tool} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("axc-run")
    run_tool("axc-translate", "--import-hf", FIXTURE, "-o", "tiny.mlir", cwd=directory)
    spec = f"specialize-groups{{kv-cache-len={KV_CACHE_LEN} prefill-len={PREFILL_LEN} last-kv-cache-len={','.join(map(str, LASTS))}}}"
    run_tool("axc-opt", "tiny.mlir", "-p", spec, "-o", "groups.mlir", cwd=directory)
    return directory / "groups.mlir"


def bf16_values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """fp32 arrays holding bf16-representable values (the runtime feeds bf16)."""
    return rng.standard_normal(shape).astype(ml_dtypes.bfloat16).astype(np.float32)


def contract_inputs(group: int, pos: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One group's inputs: `pos` tokens already cached, then this step's tokens."""
    rng = np.random.default_rng(seed)
    tokens = 1 if group == 0 else PREFILL_LEN
    history = HISTORIES[group]
    cached = pos
    assert cached <= history
    cache = (1, history, KV_DIM) if history else (1, 1, HIDDEN)
    k_cache = np.zeros(cache, np.float32)
    v_cache = np.zeros(cache, np.float32)
    if history:
        k_cache[:, :cached] = bf16_values(rng, (1, cached, KV_DIM))
        v_cache[:, :cached] = bf16_values(rng, (1, cached, KV_DIM))
    mask = np.full((1, tokens, history + tokens), MASKED, np.float32)
    mask[:, :, :cached] = 0
    for row in range(tokens):
        mask[0, row, history : history + row + 1] = 0  # causal within the chunk
    return {
        "K_cache": k_cache,
        "V_cache": v_cache,
        "indices": np.arange(cached, cached + tokens, dtype=np.uint32)[None, :],
        "input": bf16_values(rng, (1, tokens, HIDDEN)),
        "mask": mask,
    }


CASES = [
    (0, "layer_0_g0", 5), (0, "layer_1_g0", 31), (1, "layer_0_g1", 0), (2, "layer_1_g2", 5), (2, "layer_0_g2", 8),
    (3, "layer_0_g3", 16),
]


@pytest.mark.parametrize("group, func, pos", CASES, ids=[f"{f}-pos{p}" for _, f, p in CASES])
def test_axc_run_matches_module_runner(group: int, func: str, pos: int, groups: Path, tmp_path: Path) -> None:
    inputs = contract_inputs(group, pos)
    args: list[str | Path] = []
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value)
        args += ["--input", f"{name}={tmp_path / name}.npy"]
    out = tmp_path / "out"
    stdout = run_tool("axc-run", groups, "--func", func, *args, "--output-dir", out, cwd=tmp_path)

    tokens = 1 if group == 0 else PREFILL_LEN
    contract = {"K_cache_out": (1, tokens, KV_DIM), "V_cache_out": (1, tokens, KV_DIM), "output": (1, tokens, HIDDEN)}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.npy" for name in contract)
    for name in contract:
        assert f"{name}: " in stdout

    runner = ModuleRunner(read_module(groups))
    assert runner.output_names(func) == list(contract)
    expected = runner.call(func, inputs)
    for (name, shape), want in zip(contract.items(), expected, strict=True):
        got = np.load(out / f"{name}.npy")
        assert got.shape == shape, name
        assert got.dtype == np.float32, name
        assert np.isfinite(got).all(), name
        np.testing.assert_array_equal(got, np.asarray(want, np.float32), err_msg=name)


def test_axc_run_inputs_follow_contract_shapes(groups: Path) -> None:
    """The function signatures of the groups are the contract's shapes."""
    runner = ModuleRunner(read_module(groups))
    for group, history in enumerate(HISTORIES):
        tokens = 1 if group == 0 else PREFILL_LEN
        cache = (1, history, KV_DIM) if history else (1, 1, HIDDEN)
        function = runner.function(f"layer_0_g{group}")
        shapes = [tuple(t.get_shape()) for t in function.function_type.inputs.data]
        assert runner.input_names(f"layer_0_g{group}") == ["K_cache", "V_cache", "indices", "input", "mask"]
        assert shapes == [cache, cache, (1, tokens), (1, tokens, HIDDEN), (1, tokens, history + tokens)]
