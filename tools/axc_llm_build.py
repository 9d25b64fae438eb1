"""`axc-llm-build`: the job of `pulsar2 llm_build`, with the same flags.

    axc-llm-build --input_path Qwen2.5-0.5B-Instruct/ --output_path out/qwen2.5-0.5b \\
        --kv_cache_len 1023 --prefill_len 128 --last_kv_cache_len 128 --last_kv_cache_len 256 \\
        --chip AX650 -c 1 --parallel 8

Writes the runtime's model directory (one `.axmodel` per decoder layer, the post model,
the bf16 embedding table, config.json, post_config.json, the tokenizer, build_report.json);
`-c 1` then checks every layer file in the simulator, `-c 2` also runs `--prompt`.
"""

from __future__ import annotations

import os

# One BLAS thread per process: parallelism comes from worker processes, and on a shared
# machine OpenBLAS threads spinning against other load slowed the simulator's matmuls (-c 1)
# by up to 35x. Set before numpy loads; the user's own setting wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import signal  # noqa: E402
import sys  # noqa: E402
from types import FrameType  # noqa: E402

from axc.errors import report_errors  # noqa: E402


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the staging directory's cleanup


@report_errors("axc-llm-build")
def main() -> None:
    from axc.llm_build.options import from_args, parser

    options = from_args(parser().parse_args())
    signal.signal(signal.SIGTERM, _interrupt)

    from axc.llm_build.check import run_checks
    from axc.llm_build.driver import build
    from axc.llm_build.log import BuildLog

    log = BuildLog()
    result = build(options, log)
    if options.check_level >= 1:
        run_checks(result, log)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
