"""Command-line entry point: ``selfinstruct <command> ...``.

Thin by design. Each command lives in its own module under ``selfinstruct.cli`` with a
``register(subparsers)`` function that adds its parser and sets ``handler``. A handler
parses nothing itself: it calls the library and renders the result. Library errors
(:class:`selfinstruct.errors.UserError`) become one line on stderr and exit code 2, and so
does any OSError, SQLite error or undecodable text that reaches this boundary (naming the
path where the error carries one); a run stopped by its budget exits with code 3, and one
whose requests still failed after their retries (status ``incomplete``) with code 4.
Ctrl-C exits with 130 and SIGTERM with 143, each after the run has saved its state; a
second signal while that happens exits at once.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator

from selfinstruct import __version__
from selfinstruct.backends.budget import BudgetExhausted
from selfinstruct.errors import EXIT_INCOMPLETE, RunIncomplete, UserError

EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM
COMMAND_MODULES = ("run", "stages", "dedup", "evaluate", "report", "review", "finetune", "loop")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfinstruct",
        description="Self-Instruct: bootstrap instruction data from a language model.",
    )
    parser.add_argument("--version", action="version", version=f"selfinstruct {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"selfinstruct.cli.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name == f"selfinstruct.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the run saves its state and says so."""


@contextlib.contextmanager
def _signals_handled() -> Iterator[None]:
    """SIGINT and SIGTERM: the first raises :class:`KeyboardInterrupt` (:class:`Terminated`)
    in the main thread, so that the run stops, saves its manifest and says so; a second one
    while that happens exits at once, with one line and no traceback. Only where signals
    can be handled (the main thread); the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handle(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            os.write(2, b"selfinstruct: interrupted again; exiting now\n")
            os._exit(128 + signum)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _signals_handled():
        code = _main(args)
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED) and argv is None:
        # a process of its own: end now, leaving requests still in flight behind (their
        # threads would otherwise hold the interpreter's exit until they time out)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(args: argparse.Namespace) -> int:
    from selfinstruct.progress import SilentReporter, reporter_for, set_ambient

    set_ambient(reporter_for(quiet=bool(getattr(args, "quiet", False))))
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"selfinstruct: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the library did not wrap: name it, one line
        print(f"selfinstruct: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"selfinstruct: error: database: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"selfinstruct: error: not UTF-8 text ({exc.reason} at byte {exc.start})",
              file=sys.stderr)
        return 2
    except BudgetExhausted as exc:
        print(f"selfinstruct: stopped: {exc}; everything so far is saved, re-run with a "
              "higher budget to continue", file=sys.stderr)
        return 3
    except RunIncomplete as exc:
        print(f"selfinstruct: incomplete: {one_line(str(exc))}", file=sys.stderr)
        for line in exc.details:
            print(f"selfinstruct:   {one_line(line)}", file=sys.stderr)
        print("selfinstruct: everything answered is saved; re-run the same command when "
              "the server is back to continue", file=sys.stderr)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"selfinstruct: {what}; everything answered is saved; re-run the same command "
              "to resume", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    finally:
        set_ambient(SilentReporter())  # a library caller in the same process sees no bars


def os_error_line(exc: OSError) -> str:
    """``PATH: reason`` for an OSError (``PATH -> OTHER: reason`` for a rename)."""
    reason = "no space left on the device" if exc.errno == errno.ENOSPC else (
        exc.strerror or str(exc))
    if exc.filename is None:
        return one_line(reason)
    where = str(exc.filename)
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return one_line(f"{where}: {reason}")


def one_line(message: str) -> str:
    return " ".join(message.split()) if "\n" in message or "\r" in message else message


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
