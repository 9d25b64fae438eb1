"""Reading the user's JSON files (configs, checkpoint indexes) with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from axc.errors import AxcError


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Parse a JSON object from `path`; malformed input becomes a one-line `AxcError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise AxcError(f"{what} {path} is not UTF-8 text ({error.reason}); pass a JSON file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AxcError(
            f"malformed JSON in {what} {path} at line {error.lineno} column {error.colno}: {error.msg}; "
            "fix or re-download the file"
        ) from None
    except RecursionError:
        raise AxcError(f"{what} {path} nests arrays or objects too deeply to read; fix the file") from None
    if not isinstance(data, dict):
        raise AxcError(f"{what} {path} must hold a JSON object, not {type(data).__name__}; fix the file")
    return data
