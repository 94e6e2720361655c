"""Progress display: one bar per stage, on stderr, so stdout stays clean for data.

Stages talk to a :class:`Reporter` and never to rich directly; tests and library users
get :class:`SilentReporter` unless they ask for bars.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class StageProgress(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def total(self, total: int) -> None: ...
    def note(self, text: str) -> None: ...


class Reporter(Protocol):
    def stage(self, name: str, total: int | None) -> AbstractContextManager[StageProgress]: ...


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass

    def total(self, total: int) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class SilentReporter:
    @contextmanager
    def stage(self, name: str, total: int | None) -> Iterator[StageProgress]:
        yield _Silent()


class RichReporter:
    """Rich progress bars: description, bar, count, elapsed and remaining time, a note."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextmanager
    def stage(self, name: str, total: int | None) -> Iterator[StageProgress]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        progress = Progress(
            TextColumn("[bold]{task.description:<15}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"), console=self.console, transient=False,
        )
        task = progress.add_task(name, total=total, note="")

        class _Handle:
            def advance(self, n: int = 1) -> None:
                progress.advance(task, n)

            def total(self, total: int) -> None:
                progress.update(task, total=total)

            def note(self, text: str) -> None:
                progress.update(task, note=text)

        with progress:
            yield _Handle()
