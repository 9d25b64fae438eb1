"""The runtime's side files: the bf16 embedding (round to nearest even), config.json,
post_config.json and the tokenizer copy."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np

from axc.llm_build.runtime_files import (
    EMBED_FILENAME,
    EMBED_NPY_FILENAME,
    GREEDY_POST_CONFIG,
    run_script_name,
    write_runtime_files,
)
from axc.frontend.config import load_config
from axc.params import Checkpoint

DEMO = Path(__file__).resolve().parents[2] / "demo" / "qwen2-add"


def test_runtime_files_of_the_demo_model(tmp_path: Path) -> None:
    config = load_config(DEMO)
    with Checkpoint.open(DEMO) as checkpoint:
        names = write_runtime_files(config, checkpoint, DEMO, tmp_path, prefill_len=16)
        table = np.asarray(checkpoint.get("model.embed_tokens.weight"), np.float32)
    raw = (tmp_path / EMBED_FILENAME).read_bytes()
    assert len(raw) == config.vocab_size * config.hidden_size * 2
    written = np.frombuffer(raw, ml_dtypes.bfloat16).reshape(table.shape)
    np.testing.assert_array_equal(written, table.astype(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(np.load(tmp_path / EMBED_NPY_FILENAME), table)  # fp32, as the vendor's runners read it
    assert EMBED_NPY_FILENAME in names
    runtime = json.loads((tmp_path / "config.json").read_text())
    assert runtime["template_filename_axmodel"] % 1 == "qwen2_p16_l1_together.axmodel"
    assert runtime["axmodel_num"] == 2 and runtime["filename_post_axmodel"] == "qwen2_post.axmodel"
    assert (runtime["tokens_embed_num"], runtime["tokens_embed_size"]) == (16, 128)
    assert json.loads((tmp_path / "post_config.json").read_text()) == GREEDY_POST_CONFIG
    assert {"tokenizer.json", "tokenizer_config.json"} <= set(names)
    assert (tmp_path / "tokenizer.json").read_bytes() == (DEMO / "tokenizer.json").read_bytes()


def test_embedding_rounds_to_nearest_even(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    # 1 + 2^-8 + 2^-9 lies above the bf16 midpoint: RNE rounds up, truncation would not.
    values = np.array([[1 + 2**-8 + 2**-9, 1 + 2**-8, -(1 + 3 * 2**-9)]], np.float32)
    save_file({"model.embed_tokens.weight": values}, str(tmp_path / "model.safetensors"))
    from axc.llm_build.runtime_files import write_embedding

    out = tmp_path / "out"
    out.mkdir()
    with Checkpoint.open(tmp_path) as checkpoint:
        write_embedding(checkpoint, out)
    got = np.frombuffer((out / EMBED_FILENAME).read_bytes(), ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(got, [1 + 2**-7, 1.0, -(1 + 2**-7)])


def test_the_run_script_is_the_board_command_line_of_the_build(tmp_path: Path) -> None:
    config = load_config(DEMO)
    with Checkpoint.open(DEMO) as checkpoint:
        names = write_runtime_files(config, checkpoint, DEMO, tmp_path, prefill_len=16, chip="AX620E")
    script = tmp_path / run_script_name("qwen2", "AX620E")
    assert script.name == "run_qwen2_ax620e.sh" and script.name in names
    assert script.stat().st_mode & 0o111
    text = script.read_text()
    runtime = json.loads((tmp_path / "config.json").read_text())
    flags = dict(re.findall(r"--(\w+) (\S+)", text))
    assert flags["template_filename_axmodel"].strip('"') == runtime["template_filename_axmodel"]
    assert int(flags["axmodel_num"]) == runtime["axmodel_num"]
    assert (int(flags["tokens_embed_num"]), int(flags["tokens_embed_size"])) == (16, 128)
    assert flags["filename_post_axmodel"].strip('"') == runtime["filename_post_axmodel"]
    assert flags["filename_tokens_embed"].strip('"') == EMBED_FILENAME
    assert flags["url_tokenizer_model"] == '"${TOKENIZER_URL:-http://127.0.0.1:12345}"'
    assert flags["post_config_path"] == '"post_config.json"'
    assert "main_ax620e" in text and "--system_prompt" not in text  # the demo has no chat template
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0


def test_no_embed_npy(tmp_path: Path) -> None:
    with Checkpoint.open(DEMO) as checkpoint:
        names = write_runtime_files(load_config(DEMO), checkpoint, DEMO, tmp_path, prefill_len=16, embed_npy=False)
    assert EMBED_NPY_FILENAME not in names and not (tmp_path / EMBED_NPY_FILENAME).exists()
    assert (tmp_path / EMBED_FILENAME).is_file()
