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
400, every other request is answered); ``"no-echo"`` (a request with ``echo`` gets a 400,
as from a server that cannot echo log-probabilities); ``"echo-ignored"`` (``echo`` is
ignored, as by llama.cpp's server: the answer is generated text, and the log-probabilities
asked for are those of the generated tokens only).

``echo`` with ``logprobs`` (the other modes) is answered as OpenAI's legacy completions
document it: the prompt comes back as the text (followed by generated text unless
``max_tokens`` is 0) with ``tokens`` (:func:`fake_tokens`: each run of non-space
characters with the spaces before it), ``text_offset``, ``token_logprobs``
(:func:`fake_logprob`, a function of the token alone; null for the first token) and
``top_logprobs``. ``bodies`` keeps the body of every completion request. ``delay`` seconds are waited before each
completion. ``dead_after``: after that many completions the server drops every further
connection without an answer (a server that died; ``revive()`` brings it back).
``deterministic``: each answer is a function of its prompt alone, so a run that is
interrupted and resumed sees the same answers as one that is not. Use it as a context
manager; ``url`` is the base URL (``.../v1``).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "da", "fo", "gu",
             "hi", "ja", "be"]
VERBS = ["Describe", "Explain", "Summarize", "Compare", "Outline", "Classify", "Rank", "Name"]
TOKEN = re.compile(r"\s*\S+|\s+")


def fake_tokens(text: str) -> list[str]:
    """The stand-in's tokens of ``text``: each run of non-space characters with the spaces
    before it (trailing spaces are a token of their own); they join back to ``text``."""
    return TOKEN.findall(text)


def fake_logprob(token: str) -> float:
    """The stand-in's log-probability of ``token``: in (-5.0, -0.01], from its hash."""
    digest = int(hashlib.sha256(token.encode()).hexdigest()[:8], 16)
    return -round(0.01 + (digest % 499) / 100, 2)


def echo_logprobs(text: str, first: bool = True) -> dict:
    """The ``logprobs`` object of ``text`` echoed (``first``: it starts the text, so its
    first token has no log-probability)."""
    tokens = fake_tokens(text)
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    values: list[float | None] = [fake_logprob(t) for t in tokens]
    if first and values:
        values[0] = None
    return {"tokens": tokens, "text_offset": offsets, "token_logprobs": values,
            "top_logprobs": [None if v is None else {t: v} for t, v in zip(tokens, values)]}


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
        self.bodies: list[dict] = []  # the body of each completion request
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
                    server.bodies.append(body)
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
                if body.get("echo") and server.mode == "no-echo":
                    return self._error(400, "echo is not supported")
                if body.get("echo"):
                    return self._echo(body, prompt, server.mode != "echo-ignored")
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

            def _echo(self, body, prompt, echoed=True):
                if not echoed:  # generated text alone, as if echo were not asked
                    generated = server.answer(prompt)
                    logprobs = (echo_logprobs(generated, first=False)
                                if body.get("logprobs") is not None else None)
                    prompt = ""
                else:
                    generated = "" if body.get("max_tokens") == 0 else server.answer(prompt)
                    logprobs = None
                if echoed and body.get("logprobs") is not None:
                    logprobs = echo_logprobs(prompt)
                    if generated:  # offsets count on from the end of the prompt
                        more = echo_logprobs(generated, first=False)
                        for key in logprobs:
                            logprobs[key] += more[key]
                        logprobs["text_offset"][-len(more["text_offset"]):] = [
                            len(prompt) + o for o in more["text_offset"]]
                self._json(200, {
                    "id": "cmpl-fake", "object": "text_completion", "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "text": prompt + generated,
                                 "finish_reason": "length", "logprobs": logprobs}],
                    "usage": {"prompt_tokens": len(fake_tokens(prompt)),
                              "completion_tokens": len(fake_tokens(generated)),
                              "total_tokens": len(fake_tokens(prompt + generated))},
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
