"""Reading and printing IR text (with every axc dialect registered)."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError
from xdsl.utils.lexer import Input, Span

from axc.dialects import make_context
from axc.errors import AxcError

# Workaround for xDSL 0.74.0: the string-literal pattern of `_lex_string_literal` in
# xdsl/utils/mlir_lexer.py backtracks catastrophically (exponential time) on a literal
# without its closing quote or with a bad escape, so one such line hangs the parser. This
# possessive pattern finds those literals in linear time first. Drop it once xDSL's lexer
# is fixed (report: docs/upstream.md).
_LITERAL_OR_COMMENT = re.compile(r'//[^\n]*|"(?:[^"\\\n\v\f]++|\\(?:["nt\\]|[0-9A-Fa-f]{2}))*+(")?')


def _check_string_literals(text: str, name: str) -> None:
    for match in _LITERAL_OR_COMMENT.finditer(text):
        if match.group().startswith('"') and match.group(1) is None:
            bad_escape = text.startswith("\\", match.end())
            message = "invalid escape in string literal" if bad_escape else "unterminated string literal"
            raise ParseError(Span(match.start(), max(match.end(), match.start() + 1), Input(text, name)), message)


def parse_ir(ctx: Context, source: str | bytes, name: str, implicit_module: bool = True) -> ModuleOp:
    """Parse IR text: the one path by which axc-opt, axc-translate and axc-run read IR."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as error:
            raise AxcError(f"{name}: not UTF-8 text (byte {error.start}); pass an MLIR text file") from None
    _check_string_literals(source, name)
    parser = Parser(ctx, source, name)
    try:
        return parser.parse_module(implicit_module)
    except RecursionError:  # xDSL parses nested attributes, types and regions recursively
        parser.raise_error("nested too deeply to parse; flatten the attributes, types or regions")
    except (OverflowError, ValueError) as error:  # xDSL lets Python's int() and `1 << width` fail
        if isinstance(error, OverflowError) or "integer string conversion" in str(error):
            parser.raise_error("number or integer type width too large; use a smaller one")
        first = next(iter(str(error).strip().splitlines()), type(error).__name__)
        parser.raise_error(f"cannot parse this ({first}); fix the IR text")


def parse_module(text: str | bytes, name: str = "<stdin>") -> ModuleOp:
    module = parse_ir(make_context(), text, name)
    module.verify()
    return module


def read_module(path: str | Path) -> ModuleOp:
    return parse_module(Path(path).read_bytes(), str(path))


def module_text(module: ModuleOp) -> str:
    out = StringIO()
    Printer(stream=out).print_op(module)
    out.write("\n")
    return out.getvalue()
