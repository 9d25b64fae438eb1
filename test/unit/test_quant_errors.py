"""Bad quantization input through the console scripts: one stderr line, exit code 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gptq_synth import FIXTURES, copy_fixture

from axc.frontend.hf_import import import_hf
from axc.textio import module_text

BIN = Path(sys.executable).parent
TINY = Path(__file__).parents[1] / "fixtures" / "tiny-qwen2"


def one_line_error(tool: str, *args: str | Path, fragments: tuple[str, ...]) -> None:
    proc = subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{tool}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def tiny_mlir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ir") / "tiny.mlir"
    path.write_text(module_text(import_hf(TINY)))
    return path


@pytest.mark.parametrize(
    "pipeline,fragments",
    [
        ("quantize-weights{weight-type=s3}", ("unknown weight-type 's3' for quantize-weights", "s8, s4")),
        (
            "quantize-weights{weight-type=fp8_e4m3 chip=AX630C}",
            ("AX630C cannot store fp8_e4m3 decoder weights", "choose weight-type"),
        ),
        ("quantize-weights{post-weight-type=fp8_e5m2 chip=AX620Q}", ("AX620Q cannot store fp8_e5m2 lm_head weights",)),
        ("specialize-groups,set-activation-type{hidden=fp8}", ("unknown hidden type 'fp8'",)),
    ],
    ids=["unknown-type", "chip-decoder", "chip-lm-head", "unknown-hidden"],
)
def test_bad_options(tiny_mlir: Path, tmp_path: Path, pipeline: str, fragments: tuple[str, ...]) -> None:
    params = tmp_path / "p.safetensors"
    one_line_error("axc-opt", tiny_mlir, "-p", pipeline, "--params-out", params, fragments=fragments)


def test_weight_type_contradicting_gptq_bits(tmp_path: Path) -> None:
    path = tmp_path / "gptq.mlir"
    path.write_text(module_text(import_hf(FIXTURES / "qwen2-tiny-gptq-int4")))
    one_line_error(
        "axc-opt", path, "-p", "quantize-weights{weight-type=s8}", "--params-out", tmp_path / "p.safetensors",
        fragments=("weight-type=s8 contradicts the 4-bit GPTQ checkpoint", "pass weight-type=s4"),
    )


@pytest.mark.parametrize(
    "replace,config,fragments",
    [
        (
            {"model.layers.1.mlp.gate_proj.g_idx": np.arange(256, dtype=np.int32) - 3},
            None,
            ("model.layers.1.mlp.gate_proj.g_idx", "value -3 at input 0, outside the 2 groups"),
        ),
        (
            {"model.layers.0.self_attn.q_proj.qweight": np.zeros((16, 256), np.int32)},
            None,
            ("model.layers.0.self_attn.q_proj.qweight has shape [16, 256]", "implies [32, 256]"),
        ),
        (
            {"model.layers.0.mlp.up_proj.scales": np.ones((3, 512), np.float16)},
            None,
            ("model.layers.0.mlp.up_proj.scales has shape [3, 512]", "implies [2, 512]"),
        ),
        (
            {"model.layers.0.mlp.up_proj.qzeros": np.zeros((2, 32), np.int32)},
            None,
            ("model.layers.0.mlp.up_proj.qzeros has shape [2, 32]", "implies [2, 64]"),
        ),
        (
            {"model.layers.0.mlp.down_proj.g_idx": np.zeros(256, np.int32)},
            None,
            ("model.layers.0.mlp.down_proj.g_idx has shape [256]", "implies [512]"),
        ),
        (None, {"quant_method": "awq"}, ("unsupported quantization method 'awq'", "not supported yet")),
    ],
    ids=["g_idx-range", "qweight-shape", "scales-shape", "qzeros-shape", "g_idx-shape", "awq"],
)
def test_bad_gptq_checkpoints(tmp_path: Path, replace, config, fragments: tuple[str, ...]) -> None:
    directory = copy_fixture("qwen2-tiny-gptq-int4", tmp_path / "model", replace, config)
    one_line_error("axc-translate", "--import-hf", directory, "-o", tmp_path / "out.mlir", fragments=fragments)
    assert not (tmp_path / "out.mlir").exists()
