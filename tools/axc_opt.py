"""`axc-opt`: the xDSL optimizer driver with axc's dialects and passes only.

    axc-opt model.mlir -p 'specialize-groups{kv-cache-len=1023 prefill-len=128}'
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from io import StringIO
from typing import IO, ClassVar

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.arg_spec import parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from axc import __version__
from axc.binding import write_created_params
from axc.dialects import DIALECTS
from axc.errors import AxcError, report_errors
from axc.passes import PASSES
from axc.atomic import write_text
from axc.textio import parse_ir


class _Buffer(StringIO):
    """The output, kept in memory until every chunk succeeded (xDSL closes it either way)."""

    def close(self) -> None:
        pass


def _option_names(pass_class: type) -> list[str]:
    return [f.name.replace("_", "-") for f in dataclasses.fields(pass_class) if f.init]


class AxcOptMain(xDSLOptMain):
    version_format: ClassVar[str] = f"axc-opt {__version__} (xDSL {{xdsl_version}})"

    def register_all_dialects(self) -> None:
        for name, factory in DIALECTS.items():
            self.ctx.register_dialect(name, factory)

    def register_all_passes(self) -> None:
        for name, factory in PASSES.items():
            self.register_pass(name, factory)

    def register_all_frontends(self) -> None:
        def parse_mlir(stream: IO[bytes]) -> ModuleOp:
            return parse_ir(self.ctx, stream.read(), self.get_input_name(), not self.args.no_implicit_module)

        self.available_frontends["mlir"] = parse_mlir

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

    def setup_pipeline(self) -> None:
        """Check the `-p` pipeline first, so a mistake in it is one line, not a traceback."""
        spec_text = self.args.passes
        try:
            specs = list(parse_pipeline(spec_text))
        except ArgSpecParseError as error:
            detail = [line.strip() for line in str(error).splitlines() if line.strip()][-1]
            raise AxcError(f"malformed pass pipeline '{spec_text}': {detail.lstrip('^ ')}") from None
        for spec in specs:
            if spec.name not in self.available_passes:
                raise AxcError(
                    f"unknown pass '{spec.name}'; available passes: {', '.join(sorted(self.available_passes))}"
                )
            pass_class = self.available_passes[spec.name]()
            options = _option_names(pass_class)
            unknown = [name for name in spec.parameters if name.replace("_", "-") not in options]
            if unknown:
                raise AxcError(
                    f"unknown option '{unknown[0]}' of pass {spec.name}; options: {', '.join(options)}"
                )
            try:
                pass_class.from_pass_spec(spec)
            except ValueError as error:
                raise AxcError(f"bad options for pass {spec.name} in '{spec_text}': {error}") from None
        super().setup_pipeline()

    def prepare_input(self) -> tuple[list[tuple[IO[bytes], int]], str]:
        """Any file is IR text (xDSL would refuse an unknown extension with a traceback)."""
        self.args.frontend = self.args.frontend or "mlir"
        return super().prepare_input()

    def prepare_output(self) -> IO[str]:
        if self.args.output_file is None:
            return sys.stdout
        self._buffer = _Buffer()
        return self._buffer

    def run(self) -> None:
        """As xDSL's, but `-o FILE` is written (atomically) only when everything succeeded."""
        super().run()
        if self.args.output_file is not None:
            write_text(self._buffer.getvalue(), self.args.output_file)

    def apply_passes(self, prog: ModuleOp) -> None:
        super().apply_passes(prog)
        write_created_params(prog, self.args.params_out)


@report_errors("axc-opt")
def main() -> None:
    AxcOptMain(description="axc modular optimizer driver").run()


if __name__ == "__main__":
    main()
