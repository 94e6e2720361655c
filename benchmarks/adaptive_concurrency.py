"""Adaptive (AIMD) concurrency against a fixed one, on a server that throttles.

    python benchmarks/adaptive_concurrency.py [--requests 400] [--max-concurrency 32]
        [--capacity 8] [--service 0.2] [--retry-after 1.0] [--repeats 1]

A stand-in OpenAI-compatible server runs in this process on 127.0.0.1 (no model): each
``POST /v1/completions`` sleeps ``--service`` seconds and answers a fixed completion,
unless more than ``--capacity`` requests are already in flight, in which case it answers
429 at once, with ``Retry-After: --retry-after``. The same requests then go through
:func:`selfinstruct.backends.requests.run_requests` with the real
:class:`~selfinstruct.backends.openai_compat.OpenAICompatBackend` and the default retry
policy (6 attempts, backoff from 1 s), twice: with the adaptive limiter up to
``--max-concurrency``, and with a fixed concurrency of ``--max-concurrency`` (what every
run did before the limiter). No cache.

Printed per arm: wall time, throughput (completions per second), the 429s the server
answered, the requests that still failed after their retries, and the limiter's final
limit and number of cuts; then the ratios adaptive / fixed. The server's best possible
throughput is ``capacity / service`` (40/s with the defaults).
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selfinstruct.backends.base import Request, Sampling
from selfinstruct.backends.limiter import shared_limiter
from selfinstruct.backends.openai_compat import OpenAICompatBackend
from selfinstruct.backends.requests import UsageStats, run_requests


class ThrottlingServer:
    """Completions after ``service`` seconds; 429 beyond ``capacity`` requests in flight."""

    def __init__(self, capacity: int, service: float, retry_after: float):
        self.capacity, self.service, self.retry_after = capacity, service, retry_after
        self.lock = threading.Lock()
        self.in_flight = 0
        self.counts = {"ok": 0, "429": 0}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.counts = {"ok": 0, "429": 0}

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "stand-in",
                                                              "object": "model"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.in_flight += 1
                    over = outer.in_flight > outer.capacity
                    outer.counts["429" if over else "ok"] += 1
                try:
                    if over:
                        headers = ({"Retry-After": f"{outer.retry_after:g}"}
                                   if outer.retry_after > 0 else {})
                        return self._send(429, {"error": {"message": "rate limited"}}, headers)
                    time.sleep(outer.service)
                    return self._send(200, {
                        "id": "cmpl-1", "object": "text_completion", "created": 0,
                        "model": "stand-in",
                        "choices": [{"index": 0, "text": " a fixed completion",
                                     "finish_reason": "stop", "logprobs": None}],
                        "usage": {"prompt_tokens": 8, "completion_tokens": 3,
                                  "total_tokens": 11}})
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

        return Handler


def run_arm(server: ThrottlingServer, adaptive: bool, requests: int,
            max_concurrency: int) -> dict:
    server.reset()
    backend = OpenAICompatBackend("stand-in", base_url=server.url, timeout=30.0)
    batch = [Request(f"prompt {i}", Sampling(max_tokens=8)) for i in range(requests)]
    stats = UsageStats()
    started = time.perf_counter()
    results = list(run_requests(backend, batch, max_concurrency=max_concurrency,
                                stats=stats, adaptive=adaptive))
    wall = time.perf_counter() - started
    ok = sum(1 for _, c in results if c.ok)
    row = {"arm": "adaptive" if adaptive else "fixed", "requests": requests,
           "completed": ok, "failed": requests - ok, "wall_s": round(wall, 2),
           "throughput": round(ok / wall, 1), "throttled_429": server.counts["429"],
           "retries": stats.retry.retries}
    if adaptive:
        limiter = shared_limiter(backend, max_concurrency)
        row.update(final_limit=round(limiter.limit, 1), cuts=limiter.stats.decreases)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--max-concurrency", type=int, default=32)
    parser.add_argument("--capacity", type=int, default=8,
                        help="requests the server serves at once; more get 429")
    parser.add_argument("--service", type=float, default=0.2, help="seconds per completion")
    parser.add_argument("--retry-after", type=float, default=1.0,
                        help="the server's Retry-After on a 429, seconds (0: no header)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each arm")
    args = parser.parse_args()
    retry_after = (f"Retry-After {args.retry_after:g} s" if args.retry_after > 0
                   else "no Retry-After")
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}; server capacity {args.capacity}, "
          f"{args.service * 1000:.0f} ms per completion, {retry_after}; "
          f"{args.requests} requests, --max-concurrency {args.max_concurrency}")
    rows = []
    with ThrottlingServer(args.capacity, args.service, args.retry_after) as server:
        for _ in range(args.repeats):
            for adaptive in (True, False):
                row = run_arm(server, adaptive, args.requests, args.max_concurrency)
                rows.append(row)
                print(json.dumps(row))
    best = args.capacity / args.service
    for arm in ("adaptive", "fixed"):
        mine = [r for r in rows if r["arm"] == arm]
        throughput = sum(r["throughput"] for r in mine) / len(mine)
        throttled = sum(r["throttled_429"] for r in mine) / len(mine)
        failed = sum(r["failed"] for r in mine) / len(mine)
        print(f"{arm:>8}: {throughput:6.1f} completions/s ({throughput / best:.0%} of the "
              f"server's {best:.0f}/s), {throttled:7.1f} 429s, {failed:5.1f} failed")
    adaptive = [r for r in rows if r["arm"] == "adaptive"]
    fixed = [r for r in rows if r["arm"] == "fixed"]
    t_ratio = sum(r["throughput"] for r in adaptive) / max(1e-9, sum(r["throughput"]
                                                                     for r in fixed))
    q_ratio = sum(r["throttled_429"] for r in adaptive) / max(1, sum(r["throttled_429"]
                                                                     for r in fixed))
    print(f"adaptive / fixed: throughput x{t_ratio:.2f}, 429s x{q_ratio:.3f}")


if __name__ == "__main__":
    main()
