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



@pytest.fixture(scope="session")
def family_build(tmp_path_factory: pytest.TempPathFactory):
    """`family_build(name, kind)`: (build result, model dir, reference dir, build log text) of
    a `family_models.FAMILY_MODELS` checkpoint, written and built once per session."""
    from family_models import FAMILY_BUILDS, FAMILY_MODELS, KV, LASTS, PREFILL

    models: dict[str, tuple[Path, Path]] = {}
    builds: dict[tuple[str, str], tuple[object, Path, Path, str]] = {}

    def get(name: str, kind: str) -> tuple[object, Path, Path, str]:
        if name not in models:
            models[name] = FAMILY_MODELS[name](tmp_path_factory.mktemp(name))
        if (name, kind) not in builds:
            model_dir, reference_dir = models[name]
            chip, hidden = FAMILY_BUILDS[kind]
            weight_type = kind.split("-")[0]
            text = io.StringIO()
            options = BuildOptions(
                input_path=model_dir, output_path=tmp_path_factory.mktemp(f"{name}-{kind}") / "out",
                kv_cache_len=KV, prefill_len=PREFILL, last_kv_cache_len=LASTS,
                weight_type=weight_type, post_weight_type=weight_type, chip=chip, hidden_state_type=hidden,
            )
            result = build(options, BuildLog(Console(file=text, width=200)))
            builds[(name, kind)] = (result, model_dir, reference_dir, text.getvalue())
        return builds[(name, kind)]

    return get
