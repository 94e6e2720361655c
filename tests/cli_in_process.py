"""``selfinstruct ARGS`` in the test process: ``cli(capsys, *argv)`` returns the exit code,
stdout and stderr, as ``python -m selfinstruct ARGS`` would, without an interpreter start
(about a second each on two cores).

An exit argparse makes itself (``--help``, a usage error) becomes the exit code, as in a
process. Tests that need the process itself (a lock held by another process, a kill, an
import-time check) start one and say why.
"""

from __future__ import annotations

from selfinstruct.cli import main


def cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
