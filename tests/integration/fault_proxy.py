"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real OpenAI-compatible server.

For each POST attempt it draws, from a generator seeded by the body, one of: pass through, 429 with
Retry-After, 500, 503, a reset connection, a response slower than the client's timeout,
truncated JSON, or a body with no choices. Rates are configurable per kind.

Pinning: the llama.cpp server reuses its KV cache between requests, so the same request
can get different text depending on what came before it. To compare a faulty run with a
fault-free one on equal terms, the proxy remembers the first good upstream answer to
each request body and serves it again for the same body. Both runs then see the same
model answers, and any difference in their output comes from how faults were handled.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

FAULTS = ("429", "500", "503", "reset", "slow", "truncated", "empty_choices")


class FaultProxy:
    def __init__(self, upstream: str, rates: dict[str, float] | None = None, seed: int = 0,
                 slow_seconds: float = 3.0, pin: bool = True, max_faults_per_request: int = 2):
        target = urlparse(upstream)
        self.upstream_host, self.upstream_port = target.hostname, target.port
        self.rates = rates or {}
        self.seed = seed
        self.max_faults_per_request = max_faults_per_request
        self.attempts: Counter = Counter()
        self.slow_seconds = slow_seconds
        self.pin = pin
        self.pinned: dict[str, tuple[int, bytes]] = {}
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultProxy:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _draw(self, body: bytes) -> str | None:
        """The fault for this attempt: seeded by the body and its attempt number, so the
        same run meets the same faults whatever order its requests arrive in."""
        key = hashlib.sha256(body).hexdigest()
        with self.lock:
            self.attempts[key] += 1
            attempt = self.attempts[key]
        if attempt > self.max_faults_per_request:
            return None  # bounded, so that a retry policy of 3+ attempts always gets through
        roll = random.Random(f"{self.seed}:{key}:{attempt}").random()
        edge = 0.0
        for kind in FAULTS:
            edge += self.rates.get(kind, 0.0)
            if roll < edge:
                return kind
        return None

    def _forward(self, method: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        key = hashlib.sha256(method.encode() + path.encode() + body).hexdigest()
        if self.pin and method == "POST":
            with self.lock:
                if key in self.pinned:
                    self.counts["pinned_replies"] += 1
                    return self.pinned[key]
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=600)
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        result = (response.status, response.read())
        conn.close()
        if self.pin and method == "POST" and result[0] == 200:
            with self.lock:
                self.pinned.setdefault(key, result)
                result = self.pinned[key]
        return result

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, extra: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _proxy(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {"Content-Type": "application/json"}
                fault = proxy._draw(body) if method == "POST" else None
                with proxy.lock:
                    proxy.counts["requests"] += 1
                    if fault:
                        proxy.counts[fault] += 1
                if fault == "429":
                    return self._send(429, b'{"error": {"message": "rate limited"}}',
                                      {"Retry-After": "0.2"})
                if fault in ("500", "503"):
                    return self._send(int(fault), b'{"error": {"message": "server error"}}')
                if fault == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return None
                if fault == "slow":
                    time.sleep(proxy.slow_seconds)
                    return self._send(503, b'{"error": {"message": "too slow"}}')
                status, payload = proxy._forward(method, self.path, body, headers)
                if fault == "truncated":
                    return self._send(200, payload[: max(1, len(payload) // 2)])
                if fault == "empty_choices" and status == 200:
                    data = json.loads(payload)
                    data["choices"] = []
                    return self._send(200, json.dumps(data).encode())
                return self._send(status, payload)

            def do_POST(self) -> None:
                self._proxy("POST")

            def do_GET(self) -> None:
                self._proxy("GET")

        return Handler
