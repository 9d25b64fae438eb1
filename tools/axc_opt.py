"""`axc-opt`: the xDSL optimizer driver with axc's dialects and passes only.

    axc-opt model.mlir -p 'specialize-groups{kv-cache-len=1023 prefill-len=128}'
"""

from __future__ import annotations

import argparse
from typing import ClassVar

from xdsl.dialects.builtin import ModuleOp
from xdsl.xdsl_opt_main import xDSLOptMain

from axc import __version__
from axc.binding import write_created_params
from axc.dialects import DIALECTS
from axc.errors import report_errors
from axc.passes import PASSES


class AxcOptMain(xDSLOptMain):
    version_format: ClassVar[str] = f"axc-opt {__version__} (xDSL {{xdsl_version}})"

    def register_all_dialects(self) -> None:
        for name, factory in DIALECTS.items():
            self.ctx.register_dialect(name, factory)

    def register_all_passes(self) -> None:
        for name, factory in PASSES.items():
            self.register_pass(name, factory)

    def register_all_targets(self) -> None:
        super().register_all_targets()
        self.available_targets = {"mlir": self.available_targets["mlir"]}

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--params-out",
            default=None,
            help="write the parameters created by passes to this .safetensors file",
        )

    def apply_passes(self, prog: ModuleOp) -> None:
        super().apply_passes(prog)
        write_created_params(prog, self.args.params_out)


@report_errors("axc-opt")
def main() -> None:
    AxcOptMain(description="axc modular optimizer driver").run()


if __name__ == "__main__":
    main()
