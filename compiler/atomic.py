"""Atomic output files: a reader never sees a half-written file under the final name.

```python
with atomic_output(path, "wb") as stream:
    stream.write(data)          # lands at `path` only if the block completes
```
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_output(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside `path`; rename it into place only on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as stream:
            yield stream
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it private; a plain open would not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(text: str, path: str | Path | None) -> None:
    """Write to `path` atomically, or to stdout when `path` is None or '-'."""
    if path is None or str(path) == "-":
        sys.stdout.write(text)
    else:
        with atomic_output(path) as stream:
            stream.write(text)
