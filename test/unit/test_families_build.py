"""Qwen3 and HunYuan dense through `axc-llm-build`: the HY-MT1.5 recipe as typed (scaled to a
tiny HunYuan checkpoint, plain and GPTQ Int4) for AX650 and AX620E, every layer and shape
group proven by `-c 1` and a clean finish; both families from plain and GPTQ checkpoints
on both chips; bf16 builds agree with the fp32 reference to a cosine of 0.9999 per layer."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from axc.axmodel import read_axmodel
from axc.llm_build.check import CHECK_REPORT, check_layers
from axc.llm_build.driver import build
from axc.llm_build.log import BuildLog
from axc.llm_build.options import BuildOptions

GPTQ = Path(__file__).parents[1] / "fixtures" / "gptq"
BIN = Path(sys.executable).parent
LADDER = [str(n) for n in range(128, 1025, 128)]
"""The recipe's `--last_kv_cache_len 128 ... 1024`."""
RECIPE = {
    "AX650": ["--hidden_state_type", "bf16", "--prefill_len", "128", "--kv_cache_len", "2047",
              *[a for n in LADDER for a in ("--last_kv_cache_len", n)], "--chip", "AX650", "-c", "1", "--parallel", "8"],
    "AX620E": ["--hidden_state_type", "bf16", "-w", "s4", "--prefill_len", "128", "--kv_cache_len", "2047",
               *[a for n in LADDER for a in ("--last_kv_cache_len", n)], "--chip", "AX620E", "-c", "1", "--parallel", "32"],
}


@pytest.fixture(scope="module")
def recipe_build(tmp_path_factory: pytest.TempPathFactory):
    """`recipe_build(source, chip)`: the CLI run of the recipe, cached per session."""
    cache: dict[tuple[str, str], tuple[subprocess.CompletedProcess[str], Path]] = {}

    def get(source: str, chip: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        if (source, chip) not in cache:
            out = tmp_path_factory.mktemp("recipe") / f"{source}-{chip}"
            command = [str(BIN / "axc-llm-build"), "--input_path", str(GPTQ / source), "--output_path", str(out), *RECIPE[chip]]
            proc = subprocess.run(command, capture_output=True, text=True, timeout=1200)
            cache[source, chip] = (proc, out)
        return cache[source, chip]

    return get


@pytest.mark.parametrize("chip", ["AX650", "AX620E"])
@pytest.mark.parametrize("source", ["hunyuan-tiny-gptq-int4", "hunyuan-tiny-fp"])
def test_hymt_recipe_as_typed(recipe_build, source: str, chip: str) -> None:
    proc, out = recipe_build(source, chip)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "use_qk_norm=True," in proc.stdout and "qk_norm_after_rope=True," in proc.stdout
    model = read_axmodel(out / "hunyuan_v1_dense_p128_l1_together.axmodel")
    groups = len(model.groups)
    assert model.groups[0].name == "decode" and model.metadata["chip"] == chip
    assert groups == 2 + len(LADDER)  # the vendor's ladder: decode, history 0, one per value
    report = json.loads((out / CHECK_REPORT).read_text())
    assert {(r["layer"], r["group"]) for r in report["layers"]} == {(layer, g) for layer in range(2) for g in range(groups)}
    if "gptq" in source or chip == "AX650":
        assert report["worst_layer_cosine"] >= 0.999, report["worst_layer_cosine"]
    else:  # round-to-nearest s4 of random weights: the build says so and suggests wider weights
        assert report["worst_layer_cosine"] >= 0.9, report["worst_layer_cosine"]
        assert "try wider weights" in proc.stdout
    build_report = json.loads((out / "build_report.json").read_text())
    assert build_report["effective"]["weight_type"] == ("s4" if chip == "AX620E" or "int4" in source else "s8")
    if chip == "AX620E":
        assert "--parallel 32: 2 worker processes" in proc.stdout or "--parallel 32: 1 worker process" in proc.stdout


def quiet() -> BuildLog:
    return BuildLog(Console(file=io.StringIO(), width=120))


SMALL = dict(kv_cache_len=31, prefill_len=8, last_kv_cache_len=(8, 16))


@pytest.mark.parametrize(
    "source, chip, weight_type, bits",
    [
        ("qwen3-tiny-fp", "AX620E", "s8", "s8"),
        ("qwen3-tiny-gptq-int8", "AX650", None, "s8"),
        ("qwen3-tiny-gptq-int8", "AX620E", None, "s8"),
    ],
)
def test_qwen3_builds_for_both_chips(tmp_path: Path, source: str, chip: str, weight_type: str | None, bits: str) -> None:
    log = quiet()
    options = BuildOptions(input_path=GPTQ / source, output_path=tmp_path / "out", chip=chip, weight_type=weight_type, check_level=1, **SMALL)
    result = build(options, log)
    assert result.report["effective"]["weight_type"] == bits
    report = check_layers(result, log)
    assert report.worst_layer().output.cosine >= 0.999 and report.logits.values.cosine >= 0.999


@pytest.mark.parametrize("family", ["qwen3", "hunyuan_v1_dense"])
def test_bf16_builds_agree_per_layer(tiny_model_dir, tmp_path: Path, family: str) -> None:
    """bf16 weights and activations: every layer and group of the built files against the
    fp32 reference, cosine >= 0.9999."""
    log = quiet()
    options = BuildOptions(input_path=tiny_model_dir(family), output_path=tmp_path / "out", weight_type="bf16", post_weight_type="bf16", check_level=1, **SMALL)
    report = check_layers(build(options, log), log)
    for row in report.layers:
        assert row.output.cosine >= 0.9999, (row.layer, row.group, row.output)
    assert report.logits.values.cosine >= 0.9999
