"""BLAS thread limits while plans run: one thread where a plan's products must each be the
single-threaded BLAS call (`Plan.one_blas`), the caller's own limits everywhere else.

A plan that needs one thread sets it for its steps and puts the libraries' limits back
after them, so what runs between plans (transformers in the same process, say) gets its
threads. The host loop may hold the limit over the layer calls of one token (`hold`):
then it is set at the first plan that needs it and put back when the hold ends, and a
plan that does not need it still runs with the caller's limits. The libraries' own
get/set calls, not `ThreadpoolController.limit`, which reads every library's full
description each time (some 10 us a call, 30 with cold caches between plans).

```python
with BLAS.hold():              # a decode step's 25 plans: one thread set once, restored once
    with BLAS.running(True):   # one plan's steps
        ...
```
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from threadpoolctl import LibController, ThreadpoolController


class BlasLimit:
    """The process's BLAS limit (the libraries' limits are process-wide too)."""

    def __init__(self) -> None:
        self.libraries: list[LibController] | None = None
        """The BLAS libraries loaded when a plan first needed one thread."""
        self.saved: list[int | None] | None = None
        """The libraries' own limits while one thread is set; None: not set."""
        self.holds = 0
        self.one, self.theirs = Running(self, True), Running(self, False)

    def one_thread(self) -> None:
        if self.saved is None:
            if self.libraries is None:
                self.libraries = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
            self.saved = [lib.get_num_threads() for lib in self.libraries]
            for lib in self.libraries:
                lib.set_num_threads(1)

    def restore(self) -> None:
        if self.saved is not None and self.libraries is not None:
            for lib, threads in zip(self.libraries, self.saved):
                lib.set_num_threads(threads)
        self.saved = None

    def running(self, one: bool) -> Running:
        """Around a plan's steps: one BLAS thread (`one`) or the caller's limits."""
        return self.one if one else self.theirs

    @contextmanager
    def hold(self) -> Iterator[None]:
        """One thread, once a plan sets it, kept until the (outermost) hold ends."""
        self.holds += 1
        try:
            yield
        finally:
            self.holds -= 1
            if not self.holds:
                self.restore()


@dataclass(frozen=True)
class Running:
    """`BlasLimit.running`'s context (stateless: one per kind, made once)."""

    limit: BlasLimit
    one: bool

    def __enter__(self) -> None:
        if self.one:
            self.limit.one_thread()
        else:
            self.limit.restore()

    def __exit__(self, *_: object) -> None:
        if not self.limit.holds:
            self.limit.restore()


BLAS = BlasLimit()
