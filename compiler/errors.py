"""User-facing errors: one line (what, where, what to do), exit code 1, no traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import wraps
from typing import NoReturn, TypeVar

T = TypeVar("T")


class AxcError(Exception):
    """An error caused by the user's input, reported as a single line."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit code 1, like every other error."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(1)


def report_errors(tool: str) -> Callable[[Callable[[], T]], Callable[[], T]]:
    """Wrap a console entry point so that bad input prints one line and exits 1.

    `AxcError`, xDSL parse/verify errors and OS errors on user paths are reported as
    `tool: error: message`; anything else is a bug and keeps its traceback.
    """

    def wrap(main: Callable[[], T]) -> Callable[[], T]:
        @wraps(main)
        def run() -> T:
            from xdsl.utils.exceptions import DiagnosticException, ParseError

            try:
                return main()
            except AxcError as error:
                message = str(error)
            except ParseError as error:
                lines = [line for line in str(error).splitlines() if line.strip()]
                message = f"{lines[0].strip()}: {lines[-1].strip()}"
            except DiagnosticException as error:
                message = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
            except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
                message = f"{error.strerror}: {error.filename}"
            except KeyboardInterrupt:
                message = "interrupted"
            print(f"{tool}: error: {message}", file=sys.stderr)
            sys.exit(1)

        return run

    return wrap
