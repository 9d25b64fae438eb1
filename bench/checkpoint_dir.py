"""What the bench checkpoint makers share: a checkpoint directory written once, completely
or not at all, and their command line.

```python
def ensure(out: Path = DEFAULT_OUT, layers: int = 24) -> Path:
    return checkpoint_dir.ensure(out, layers, "Qwen2.5-0.5B-shaped", is_complete, lambda tmp: write(tmp, layers))

if __name__ == "__main__":
    checkpoint_dir.main(__doc__, DEFAULT_OUT, 24, ensure)
```
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temporary directory beside `out`, renamed to `out` (replacing it) when the block
    completes and removed when it fails, so `out` is never a half-written checkpoint."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure(
    out: Path, layers: int, what: str, is_complete: Callable[[Path, int], bool], write: Callable[[Path], None]
) -> Path:
    """`out`, first made with `write(staging directory)` unless it holds a complete
    `layers`-layer checkpoint already."""
    if not is_complete(out, layers):
        start = time.perf_counter()
        print(f"making a random {what} checkpoint ({layers} layers) in {out} ...", file=sys.stderr)
        with staged(out) as tmp:
            write(tmp)
        print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return out


def main(
    doc: str, default_out: Path, layers: int, ensure: Callable[..., Path],
    options: tuple[tuple[str, dict[str, Any]], ...] = (),
) -> None:
    """The makers' command line: `--out`, `--layers` and positive integer `options`, passed
    to `ensure` by name; prints the checkpoint directory."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--out", type=Path, default=default_out, help=f"output directory (default: {default_out})")
    p.add_argument("--layers", type=int, default=layers, help=f"number of decoder layers (default: {layers})")
    for flag, settings in options:
        p.add_argument(flag, type=int, **settings)
    args = p.parse_args()
    for name, value in vars(args).items():
        if isinstance(value, int) and value <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    print(ensure(**vars(args)))
