"""A tiny OpenAI-compatible server for tests that need a backend but no model.

``FakeServer(mode=...)`` listens on 127.0.0.1 in a thread and answers ``GET /v1/models``
and ``POST /v1/completions`` with made-up text in the shapes the pipeline parses:

* a bootstrap prompt (ends with ``9.``): three new numbered instructions of random words;
* a classification prompt (ends with ``Is it classification?``): `` No``;
* anything else (an instance prompt): two ``Example`` blocks with an input and an output.

Modes: ``"ok"``; ``"unauthorized"`` (401 on every route, as a server with a wrong key);
``"unauthorized-completions"`` (the model list answers, every completion gets 401);
``"forbidden"`` (403 everywhere); ``"echo-key"`` (every completion gets a 400 whose
message repeats the bearer key uppercased); ``"echo-auth"`` (every completion gets a 400
whose message repeats the Authorization header as sent); ``"bad-instances"`` (an instance prompt gets a
400, every other request is answered). ``delay`` seconds are waited before each
completion. ``dead_after``: after that many completions the server drops every further
connection without an answer (a server that died; ``revive()`` brings it back).
``deterministic``: each answer is a function of its prompt alone, so a run that is
interrupted and resumed sees the same answers as one that is not. Use it as a context
manager; ``url`` is the base URL (``.../v1``).
"""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "da", "fo", "gu",
             "hi", "ja", "be"]
VERBS = ["Describe", "Explain", "Summarize", "Compare", "Outline", "Classify", "Rank", "Name"]


class FakeServer:
    def __init__(self, mode: str = "ok", delay: float = 0.0, dead_after: int | None = None,
                 deterministic: bool = False):
        self.mode = mode
        self.delay = delay
        self.dead_after = dead_after
        self.deterministic = deterministic
        self.dropped = 0
        self.authorizations: list[str] = []  # the Authorization header of each request
        self.requests = 0
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # http.server's naming
                if server.mode in ("unauthorized", "forbidden"):
                    return self._error(401 if server.mode == "unauthorized" else 403,
                                       "invalid api key")
                self._json(200, {"object": "list",
                                 "data": [{"id": "fake", "object": "model", "created": 0,
                                           "owned_by": "test"}]})

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.authorizations.append(self.headers.get("authorization", ""))
                    dead = server.dead_after is not None and server.requests >= server.dead_after
                    if dead:
                        server.dropped += 1
                    else:
                        server.requests += 1
                if dead:  # no status line, no body: the connection just ends
                    self.close_connection = True
                    return
                if server.delay:
                    time.sleep(server.delay)
                if server.mode in ("unauthorized", "unauthorized-completions"):
                    return self._error(401, "Incorrect API key provided")
                if server.mode == "forbidden":
                    return self._error(403, "forbidden")
                if server.mode == "echo-auth":
                    return self._error(400, "who are you? you sent "
                                       + self.headers.get("authorization", ""))
                if server.mode == "echo-key":
                    key = self.headers.get("authorization", "").removeprefix("Bearer ")
                    return self._error(400, f"bad request from KEY={key.upper()}")
                prompt = body.get("prompt", "")
                if server.mode == "bad-instances" and not (
                        prompt.rstrip().endswith("9.")
                        or prompt.rstrip().endswith("Is it classification?")):
                    return self._error(400, "this server cannot write instances")
                text = server.answer(prompt)
                self._json(200, {
                    "id": "cmpl-fake", "object": "text_completion", "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "text": text, "finish_reason": "stop",
                                 "logprobs": None}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5,
                              "total_tokens": 15},
                })

            def _error(self, status, message):
                self._json(status, {"error": {"message": message, "type": "invalid_request",
                                              "code": status}})

            def _json(self, status, data):
                blob = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _word(self) -> str:
        return "".join(self._rng.choice(SYLLABLES) for _ in range(3))

    def revive(self) -> None:
        """Answer again, after ``dead_after``."""
        self.dead_after = None

    def answer(self, prompt: str) -> str:
        with self._lock:
            if self.deterministic:
                import hashlib

                self._rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
            if prompt.rstrip().endswith("9."):
                items = [f"{self._rng.choice(VERBS)} " + " ".join(self._word() for _ in range(6))
                         + "." for _ in range(3)]
                return " " + "\n".join(f"{n}. {item}" if n > 9 else item
                                       for n, item in zip(range(9, 12), items))
            if prompt.rstrip().endswith("Is it classification?"):
                return " No"
            pairs = [(" ".join(self._word() for _ in range(4)),
                      " ".join(self._word() for _ in range(3))) for _ in range(2)]
            return "".join(f"Example {k}\nInput: {i}\nOutput: {o}\n"
                           for k, (i, o) in enumerate(pairs, start=1))

    def start(self) -> None:
        self._thread.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":  # a server for a subprocess: prints its URL, serves until killed
    import sys

    with FakeServer(mode=sys.argv[1] if len(sys.argv) > 1 else "ok",
                    delay=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0) as fake:
        print(fake.url, flush=True)
        threading.Event().wait()
