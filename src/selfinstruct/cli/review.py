"""``selfinstruct review RUN``: the local review web app (see docs/report-and-review.md).

::

    selfinstruct review RUN [--port 8000] [--host 127.0.0.1] [--reviewer NAME]
    selfinstruct review DIR --rate A_predictions.jsonl B_predictions.jsonl \\
        [--judge-ratings ratings.jsonl] [--seed 0]
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import socket


def _default_reviewer() -> str:
    try:
        return getpass.getuser() or "anonymous"
    except (OSError, KeyError):  # no user name in this environment
        return "anonymous"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "review", help="browse, curate and rate a run in a local web app",
        description="Serve a local web app on RUN: browse kept and rejected instructions, "
                    "mark tasks accept/reject/edit with the paper's three validity questions "
                    "(stored in RUN/review.sqlite; 'export --reviewed' applies them), and "
                    "with --rate, rate responses A/B/C/D blind. Needs: pip install "
                    "'selfinstruct[review]'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run", metavar="RUN",
                        help="run directory (any existing directory when only rating)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; keep the default to stay local")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--reviewer", default=_default_reviewer(),
                        help="your name; ratings are stored as rater 'human:<name>'")
    parser.add_argument("--rate", nargs="+", metavar="PREDICTIONS", default=[],
                        help="prediction files to rate (eval user-oriented run output, or "
                             "the original human_eval predictions)")
    parser.add_argument("--judge-ratings", nargs="+", metavar="RATINGS", default=[],
                        help="judge ratings.jsonl files, for Cohen's kappa (RUN/ratings.jsonl "
                             "is read when present)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rating order")
    parser.set_defaults(handler=handle)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_free(host: str, port: int) -> None:
    from selfinstruct.errors import UserError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another "
                            "--port or --host") from None


def handle(args: argparse.Namespace) -> int:
    from selfinstruct.errors import UserError
    from selfinstruct.review import require_review

    require_review("review")
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    from selfinstruct.review.app import LOOPBACK_NAMES, create_app

    _check_free(args.host, args.port)
    loopback = _is_loopback(args.host)
    app = create_app(args.run, reviewer=args.reviewer, predictions=args.rate,
                     judge_ratings=args.judge_ratings, seed=args.seed,
                     allowed_hosts=LOOPBACK_NAMES if loopback else ["*"])
    import uvicorn

    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"review app for {args.run}: http://{shown}:{args.port}/  (Ctrl-C to stop)")
    if not loopback:
        print("selfinstruct: warning: listening on a non-loopback address: anyone who can "
              "reach it can read and change the reviews")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
