"""Progress display: one bar per phase, on stderr, so stdout stays clean for data.

Stages (and the other long phases: loading a model, assembling Gemma's GGUF file, the
calibration, the analysis report, an export) talk to a :class:`Reporter` and never to
rich directly; tests and library users get :class:`SilentReporter` unless they ask for
bars. :class:`RichReporter` draws a bar with the count, the elapsed time and an ETA when
stderr is a terminal, and writes one line when a phase starts and one when it ends
(:class:`LineReporter`) when it is not (a log file, CI).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TextIO


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


class _Count:
    def __init__(self, total: int | None) -> None:
        self.done, self.total_, self.note_ = 0, total, ""

    def advance(self, n: int = 1) -> None:
        self.done += n

    def total(self, total: int) -> None:
        self.total_ = total

    def note(self, text: str) -> None:
        self.note_ = text


# A phase shorter than this many seconds writes no line off a terminal.
LINE_DELAY = 2.0


class LineReporter:
    """For a stderr that is not a terminal (a log file, CI): a line when a phase has run for
    ``delay`` seconds (:data:`LINE_DELAY`; "started"), and one when it ends, with its count
    and duration. A shorter phase writes nothing: a log keeps the long phases, and a failed
    command's error stays the one line it prints."""

    def __init__(self, stream: TextIO | None = None, delay: float | None = None) -> None:
        self.stream = stream
        self.delay = LINE_DELAY if delay is None else delay
        self._lock = threading.Lock()

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    @contextmanager
    def stage(self, name: str, total: int | None) -> Iterator[StageProgress]:
        count = _Count(total)
        started = time.perf_counter()
        state = {"announced": False, "ended": False}
        guard = threading.Lock()

        def announce() -> None:
            with guard:
                if not state["ended"]:
                    state["announced"] = True
                    self._write(f"{name}: started" + (f" ({total:,})" if total else ""))

        timer = None
        if self.delay <= 0:
            announce()
        else:
            timer = threading.Timer(self.delay, announce)
            timer.daemon = True
            timer.start()
        ok = False
        try:
            yield count
            ok = True
        finally:
            if timer is not None:
                timer.cancel()
            with guard:
                state["ended"] = True
                if state["announced"]:
                    seconds = time.perf_counter() - started
                    done = (f" {count.done:,}/{count.total_:,}," if count.total_
                            else f" {count.done:,}," if count.done else "")
                    note = f" ({count.note_})" if count.note_ else ""
                    self._write(f"{name}: {'done' if ok else 'stopped'},{done} "
                                f"{seconds:.1f} s{note}")


def reporter_for(stream: TextIO | None = None, quiet: bool = False) -> Reporter:
    """Bars on a terminal, start and end lines elsewhere, nothing when ``quiet``."""
    if quiet:
        return SilentReporter()
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return RichReporter()
    return LineReporter(stream)


class RichReporter:
    """Rich progress bars: description, bar, count, elapsed and remaining time, a note.
    Where stderr is not a terminal, the start and end lines of :class:`LineReporter`."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self._lines = None if self.console.is_terminal else LineReporter()

    @contextmanager
    def stage(self, name: str, total: int | None) -> Iterator[StageProgress]:
        if self._lines is not None:
            with self._lines.stage(name, total) as lines:
                yield lines
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        name_column = TextColumn("[bold]{task.description:<20}")
        if total is None:  # a phase without a count (loading a model): its time, then done
            columns = [name_column, SpinnerColumn(finished_text="✓"), TimeElapsedColumn(),
                       TextColumn("{task.fields[note]}")]
        else:
            columns = [name_column, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("eta"), TimeRemainingColumn(),
                       TextColumn("{task.fields[note]}")]
        progress = Progress(*columns, console=self.console, transient=False)
        task = progress.add_task(name, total=total, note="")

        class _Handle:
            def advance(self, n: int = 1) -> None:
                progress.advance(task, n)

            def total(self, total: int) -> None:
                progress.update(task, total=total)

            def note(self, text: str) -> None:
                progress.update(task, note=text)

        with progress:
            try:
                yield _Handle()
            except BaseException:
                progress.update(task, note="stopped")
                raise
            if total is None:
                progress.update(task, total=1, completed=1)  # the spinner's ✓


_AMBIENT: list[Reporter] = [SilentReporter()]


def ambient() -> Reporter:
    """The reporter the command installed (:func:`set_ambient`), for long phases deep in
    the call tree that no stage context reaches: assembling a model file, the report."""
    return _AMBIENT[0]


def set_ambient(reporter: Reporter) -> None:
    _AMBIENT[0] = reporter
