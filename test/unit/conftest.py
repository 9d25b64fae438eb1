from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.console import Console

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import build_tiny_model  # noqa: E402

from axc.llm_build.driver import build  # noqa: E402
from axc.llm_build.log import BuildLog  # noqa: E402
from axc.llm_build.options import BuildOptions  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "demo" / "qwen2-add"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """`tiny_model_dir(family)`: a cached tiny random checkpoint per family."""
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = build_tiny_model(family, tmp_path_factory.mktemp(family))
        return cache[family]

    return get


@pytest.fixture(scope="session")
def runtime_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model built once per session for the runtime tests: 32 tokens of context,
    chunks of 8 over three prefill groups, AX650."""
    import io

    from rich.console import Console

    from axc.llm_build.driver import build
    from axc.llm_build.log import BuildLog
    from axc.llm_build.options import BuildOptions

    demo = Path(__file__).resolve().parents[2] / "demo" / "qwen2-add"
    out = tmp_path_factory.mktemp("runtime-demo") / "qwen2-add-ax650"
    options = BuildOptions(input_path=demo, output_path=out, kv_cache_len=32, prefill_len=8, last_kv_cache_len=(16, 24))
    return build(options, BuildLog(Console(file=io.StringIO()))).directory


@pytest.fixture(scope="session")
def runner_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model built once with the flags the vendor's Python runners hard-code
    (`--kv_cache_len 2047 --prefill_len 128`: decode and the history-0 prefill group)."""
    out = tmp_path_factory.mktemp("runner") / "qwen2-add"
    build(BuildOptions(input_path=DEMO, output_path=out, kv_cache_len=2047, prefill_len=128), BuildLog(Console(file=io.StringIO())))
    return out
