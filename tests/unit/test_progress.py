"""Progress: a bar on a terminal; off one, a line when a phase starts and one when it ends."""

from __future__ import annotations

import io

import pytest

from selfinstruct.progress import (
    LineReporter,
    RichReporter,
    SilentReporter,
    ambient,
    reporter_for,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_phase_writes_a_start_and_an_end_line():
    stream = io.StringIO()
    assert isinstance(reporter_for(stream), LineReporter)
    reporter = LineReporter(stream, delay=0)  # every phase counts as long
    with reporter.stage("calibrate", 1440) as bar:
        bar.advance(1000)
        bar.advance(440)
        bar.note("shared cache")
    with reporter.stage("load model", None):
        pass
    lines = stream.getvalue().splitlines()
    assert lines[0] == "calibrate: started (1,440)"
    assert lines[1].startswith("calibrate: done, 1,440/1,440, ") and lines[1].endswith(
        " s (shared cache)")
    assert lines[2] == "load model: started"
    assert lines[3].startswith("load model: done, ") and lines[3].endswith(" s")
    assert len(lines) == 4  # no redraws


def test_a_long_phase_that_fails_says_it_stopped():
    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt), \
            LineReporter(stream, delay=0).stage("instances", 50) as bar:
        bar.advance(7)
        raise KeyboardInterrupt
    assert stream.getvalue().splitlines()[1].startswith("instances: stopped, 7/50, ")


def test_a_short_phase_writes_nothing():
    stream = io.StringIO()
    reporter = LineReporter(stream, delay=30)
    with reporter.stage("export", 3) as bar:
        bar.advance(3)
    with pytest.raises(OSError), reporter.stage("export parquet", None):
        raise OSError("disk full")  # the command's one-line error says it
    assert stream.getvalue() == ""


def test_a_phase_announces_itself_once_it_has_run_for_the_delay():
    import time

    stream = io.StringIO()
    with LineReporter(stream, delay=0.05).stage("calibrate", 1440):
        time.sleep(0.5)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "calibrate: started (1,440)" and lines[1].startswith("calibrate: done")


def test_a_terminal_gets_bars_and_quiet_gets_nothing():
    assert isinstance(reporter_for(Terminal()), RichReporter)
    assert isinstance(reporter_for(Terminal(), quiet=True), SilentReporter)
    assert isinstance(ambient(), SilentReporter)  # a library caller sees nothing


def test_rich_reporter_off_a_terminal_writes_lines(capsys, monkeypatch):
    import selfinstruct.progress

    monkeypatch.setattr(selfinstruct.progress, "LINE_DELAY", 0)
    reporter = RichReporter()  # pytest's captured stderr is not a terminal
    with reporter.stage("export", 3) as bar:
        bar.advance(3)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "export: started (3)" and err[1].startswith("export: done, 3/3, ")
