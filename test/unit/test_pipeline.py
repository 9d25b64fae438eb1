"""The build's pass pipeline is one definition: the docs and the README show its text, and
the text runs in `axc-opt` as it is printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from xdsl.passes import PassPipeline

from axc.llm_build.pipeline import llm_pipeline, pipeline_text, spec, stage, until
from axc.passes import PASSES
from axc.passes.specialize_groups import SpecializeGroups
from axc.passes.tile import Tile

REPO = Path(__file__).resolve().parents[2]
SEED = llm_pipeline(chip="AX650", kv_cache_len=1023, prefill_len=128, last_kv_cache_len=(128, 256, 384, 512))
"""The README's seed command."""


def test_docs_show_the_seed_pipeline() -> None:
    text = (REPO / "docs" / "pipeline.md").read_text()
    section = text[text.index("## 9. The whole build") :]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None
    assert "".join(line.strip() for line in block.group(1).splitlines()) == pipeline_text(SEED)


def test_readme_log_shows_the_seed_pipeline() -> None:
    assert f"pass pipeline: {pipeline_text(SEED)}\n" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("chip, mode", [("AX650", "NPU3"), ("AX630C", "NPU2")])
def test_text_parses_back_to_the_same_passes(chip: str, mode: str) -> None:
    stages = llm_pipeline(
        chip=chip, npu_mode=mode, kv_cache_len=15, prefill_len=4, last_kv_cache_len=(4, 8), weight_type="s4", post_topk=3
    )
    parsed = PassPipeline.parse_spec(PASSES, pipeline_text(stages)).passes
    assert list(parsed) == stages
    assert stages[-1].name == ("lower-to-ax650" if chip == "AX650" else "lower-to-ax620e")


def test_stage_helpers() -> None:
    assert spec(stage(SEED, SpecializeGroups)) == "specialize-groups{kv-cache-len=1023 prefill-len=128 last-kv-cache-len=128,256,384,512}"
    assert [p.name for p in until(SEED, Tile)] == ["quantize-weights", "specialize-groups", "set-activation-type"]


def test_every_pass_has_a_lit_test_from_its_own_level() -> None:
    """`test/passes/<name>.mlir` per pass, whose input is IR of the pass's level (not the
    importer's output: that is `test/translate/` and `test/pipeline/`)."""
    folder = REPO / "test" / "passes"
    assert sorted(PASSES) == sorted(p.stem for p in folder.glob("*.mlir") if p.stem in PASSES)
    for path in folder.glob("*.mlir"):
        runs = [line for line in path.read_text().splitlines() if "RUN:" in line]
        assert runs and not any("--import-hf" in line for line in runs), path.name
