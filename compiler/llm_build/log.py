"""The build's console output, in the vendor tool's style: timestamped levels, progress bars,
and the stage timings that go into `build_report.json`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LEVEL_STYLES = {"INFO": "", "SUCCESS": "bold green", "WARNING": "bold yellow"}


@dataclass
class BuildLog:
    """Log lines `2026-01-01 12:00:00.000 | SUCCESS  | message` and per-stage wall times."""

    console: Console = field(default_factory=Console)
    timings: dict[str, float] = field(default_factory=dict)

    def line(self, level: str, message: str) -> None:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        style = LEVEL_STYLES[level]
        text = f"{stamp} | {level:<8} | {escape(message)}"
        self.console.print(f"[{style}]{text}[/]" if style else text, highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        self.line("INFO", message)

    def success(self, message: str) -> None:
        self.line("SUCCESS", message)

    def warning(self, message: str) -> None:
        self.line("WARNING", message)

    def print(self, text: object = "", style: str | None = None) -> None:
        """Plain output (no markup: model text may hold brackets)."""
        self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage of the build (accumulates when a stage runs in several parts)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Progress]:
        """A bar `description ━━━ n/total 0:00:12`; advance it with `bar.advance(0)`."""
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console) as bar:
            bar.add_task(description, total=total)
            yield bar
