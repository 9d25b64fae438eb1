"""`axc-translate`: translations into and out of the IR.

    axc-translate --import-hf models/Qwen2.5-0.5B -o qwen.mlir
"""

from __future__ import annotations

import argparse

from axc import __version__
from axc.errors import ArgumentParser, report_errors
from axc.textio import module_text, write_text


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="axc-translate", description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--import-hf", metavar="DIR", help="Hugging Face directory → tfm IR")
    p.add_argument("--model-config", metavar="JSON", help="vendor-style model config overriding config.json")
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    p.add_argument("--version", action="version", version=f"axc-translate {__version__}")
    return p


@report_errors("axc-translate")
def main() -> None:
    args = parser().parse_args()
    if args.import_hf:
        from axc.frontend.hf_import import import_hf

        module = import_hf(args.import_hf, args.model_config)
        write_text(module_text(module), args.output)


if __name__ == "__main__":
    main()
