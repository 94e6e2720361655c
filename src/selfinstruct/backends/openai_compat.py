"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI) via the ``openai`` SDK.

Requests go to the completions endpoint, or to chat completions when ``Request.chat`` is
set (the prompt becomes one user message). The API key is read from an environment
variable at construction and lives only inside the SDK client: it is not part of
``identity``, never written to the run directory, and scrubbed from error messages.

Status codes are mapped onto the two error kinds of ``base.py``: 408, 409, 429 and 5xx,
timeouts and connection errors are transient (retried with backoff, honouring
Retry-After); everything else fails the request at once. The SDK's own retries are off,
so that one policy, in ``retry.py``, governs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from selfinstruct.backends.base import (
    BackendError,
    Completion,
    Request,
    TransientBackendError,
)
from selfinstruct.errors import UserError

TRANSIENT_STATUS = {408, 409, 429}


class OpenAICompatBackend:
    def __init__(self, model: str, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0):
        import openai  # a core dependency, imported only when this backend is used

        self._openai = openai
        key = os.environ.get(api_key_env)
        if key is None and base_url is None:
            raise UserError(
                f"no API key: set the environment variable {api_key_env}, or pass --base-url "
                "for a local server that needs none"
            )
        self._secret = key or ""
        self.model = model
        self.base_url = base_url
        self._client = openai.OpenAI(
            api_key=key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0
        )

    def check_connection(self) -> None:
        """Fail fast, with one clear line, when the server cannot be reached at all.

        Only a refused or unroutable connection is fatal here; a server without a
        ``/models`` route, or one that answers with an error, is left to the requests."""
        try:
            self._client.with_options(timeout=10.0).models.list()
        except self._openai.APIConnectionError as exc:
            where = self.base_url or "the OpenAI API"
            cause = exc.__cause__ or exc
            raise UserError(self._scrub(
                f"--base-url: cannot connect to {where} ({type(cause).__name__}: {cause}); "
                "is the server running?"
            )) from None
        except self._openai.OpenAIError:
            pass

    @property
    def identity(self) -> dict:
        return {"backend": "openai", "model": self.model, "base_url": self.base_url}

    def _scrub(self, message: str) -> str:
        if self._secret and self._secret in message:
            message = message.replace(self._secret, "***")
        return message

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        return [self._one(request) for request in requests]

    def _one(self, request: Request) -> Completion:
        s = request.sampling
        params = {
            "model": self.model, "temperature": s.temperature, "top_p": s.top_p,
            "max_tokens": s.max_tokens, "presence_penalty": s.presence_penalty,
            "frequency_penalty": s.frequency_penalty,
            "stop": list(s.stop)[:4] or None,  # OpenAI accepts at most 4 stop sequences
        }
        if s.seed is not None:
            params["seed"] = s.seed
        started = time.perf_counter()
        try:
            if request.chat:
                response = self._client.chat.completions.create(
                    messages=[{"role": "user", "content": request.prompt}], **params
                )
            else:
                response = self._client.completions.create(prompt=request.prompt, **params)
        except self._openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except (self._openai.APITimeoutError, self._openai.APIConnectionError) as exc:
            raise TransientBackendError(self._scrub(f"{type(exc).__name__}: {exc}")) from None
        except (self._openai.OpenAIError, ValueError) as exc:  # malformed body and the like
            raise TransientBackendError(self._scrub(f"{type(exc).__name__}: {exc}")) from None
        return self._parse(response, request, time.perf_counter() - started)

    def _status_error(self, exc) -> BackendError:
        status = exc.status_code
        message = self._scrub(f"HTTP {status}: {exc.message}")
        if status in TRANSIENT_STATUS or status >= 500:
            retry_after = None
            header = exc.response.headers.get("retry-after") if exc.response is not None else None
            if header:
                try:
                    retry_after = float(header)
                except ValueError:
                    retry_after = None
            return TransientBackendError(message, retry_after=retry_after)
        return BackendError(message)

    def _parse(self, response, request: Request, seconds: float) -> Completion:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise TransientBackendError("the server answered with no choices")
        choice = choices[0]
        if request.chat:
            text = (choice.message.content if choice.message else None) or ""
        else:
            text = choice.text or ""
        finish = choice.finish_reason or "stop"
        if finish not in ("stop", "length"):
            finish = "stop"
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            seconds=seconds,
        )
