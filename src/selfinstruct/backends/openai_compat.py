"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI) via the ``openai`` SDK.

Requests go to the completions endpoint, or to chat completions when ``Request.chat`` is
set (the prompt becomes one user message). The API key is read from an environment
variable at construction and lives only inside the SDK client: it is not part of
``identity``, never written to the run directory, and scrubbed from error messages.

Status codes are mapped onto the two error kinds of ``base.py``: 408, 409, 429 and 5xx,
timeouts and connection errors are transient (retried with backoff, honouring
Retry-After); 401 and 403 (a rejected key) stop the whole run at once
(:class:`FatalBackendError`: one line, exit code 2), since every request would meet them;
everything else fails the request at once. The SDK's own retries are off,
so that one policy, in ``retry.py``, governs. 429, 503 and timeouts are also marked
``throttled``: the executor then lowers the requests in flight (``limiter.py``), which
``adaptive_concurrency`` asks for.

Scoring (``Request.choices``): a choice's log-probability comes from the first token's top
log-probabilities (``max_tokens=1``), which is exact for one-token choices (``" Yes"``,
``" No"``). A request that sets ``Request.whole`` wants every token of a longer choice
scored: it is asked the way OpenAI's legacy completions document it, ``prompt + choice``
echoed with ``logprobs=1`` and ``max_tokens=0``, the choice's score the sum of the echoed
tokens' log-probabilities from the end of ``prompt`` on (:func:`whole_text_logprob`).
vLLM answers that; llama.cpp's server and others refuse it or leave the prompt's
log-probabilities out. So :attr:`OpenAICompatBackend.scores_whole_texts` is a property
that asks the server once, with a small echo request (:meth:`probe_whole_text_scoring`),
and keeps the answer for the backend's life: a caller that needs whole-text scores checks
it before asking for them, as the curated recipe's answers stage does.
"""

from __future__ import annotations

import base64
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from selfinstruct.backends.base import (
    BackendError,
    Completion,
    FatalBackendError,
    Request,
    TransientBackendError,
    scored,
)
from selfinstruct.backends.pool.endpoints import public_url, redact_text, redact_url
from selfinstruct.backends.retry import RetryPolicy, call_with_retry
from selfinstruct.errors import ServerUnavailable, UserError

TRANSIENT_STATUS = {408, 409, 429}
AUTH_STATUS = {401, 403}  # the key is rejected: every request would be; the run stops
THROTTLE_STATUS = {429, 503}  # "send less": the adaptive concurrency backs off
TOP_LOGPROBS = 20
#: set to ``basic`` to send a ``--base-url``'s ``user:password@`` as HTTP Basic auth
URL_CREDENTIALS_ENV = "SELFINSTRUCT_URL_CREDENTIALS"
#: the prompt and choice of the request that asks a server whether it scores whole texts
ECHO_PROBE = ("The capital of France is", " Paris.")


class OpenAICompatBackend:
    # the executor adapts the requests in flight to the server's throttling (limiter.py)
    adaptive_concurrency = True

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
        # secrets to scrub from messages: the key, the URL's user and password, and their
        # base64 (a Basic auth header, echoed) and URL encodings
        self._secrets = scrub_forms(key, *_url_secrets(base_url))
        self.model = model
        self.base_url = base_url
        # credentials in the URL are not sent as HTTP Basic auth unless asked for
        # (SELFINSTRUCT_URL_CREDENTIALS=basic): a server may log or echo the header
        sent_url = base_url if (base_url is None or os.environ.get(
            URL_CREDENTIALS_ENV, "").strip().lower() == "basic") else public_url(base_url)
        self._client = openai.OpenAI(
            api_key=key or "not-needed", base_url=sent_url, timeout=timeout, max_retries=0
        )
        # whether the server scores whole texts (echo): None until asked
        self._whole: bool | None = None
        self._whole_lock = threading.Lock()
        #: the retries of :meth:`probe_whole_text_scoring` on transient errors
        self.probe_policy = RetryPolicy()

    def check_connection(self) -> None:
        """Fail fast, with one clear line, when the server cannot be reached at all.

        Only a refused or unroutable connection is fatal here; a server without a
        ``/models`` route, or one that answers with an error, is left to the requests."""
        try:
            self._client.with_options(timeout=10.0).models.list()
        except self._openai.APIStatusError as exc:
            if exc.status_code in AUTH_STATUS:
                raise self._status_error(exc) from None
        except self._openai.APIConnectionError as exc:
            where = redact_url(self.base_url) if self.base_url else "the OpenAI API"
            cause = exc.__cause__ or exc
            raise UserError(self._scrub(
                f"--base-url: cannot connect to {where} ({type(cause).__name__}: {cause}); "
                "is the server running?"
            )) from None
        except self._openai.OpenAIError:
            pass

    @property
    def identity(self) -> dict:
        base_url = redact_url(self.base_url) if self.base_url else None
        return {"backend": "openai", "model": self.model, "base_url": base_url}

    def _scrub(self, message: str) -> str:
        """``message`` without the key or URL credentials, in any letter case (a server
        may echo the key uppercased, or URL-encoded in a quoted URL)."""
        for secret in self._secrets:
            message = re.sub(re.escape(secret), "***", message, flags=re.IGNORECASE)
        return redact_text(message)

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        return [self._one(request) for request in requests]

    @property
    def scores_whole_texts(self) -> bool:
        """Whether a ``Request.whole`` scoring request gets scores: the server echoes a
        prompt with its log-probabilities. The first read asks the server
        (:meth:`probe_whole_text_scoring`); later reads answer from memory."""
        return self.probe_whole_text_scoring()

    def probe_whole_text_scoring(self) -> bool:
        """Ask the server, once for this backend, whether it scores whole texts: one echo
        request (:data:`ECHO_PROBE`) whose answer must echo the text with a log-probability
        for the choice's tokens. A refusal (400, 404, 422 and the like: ``echo`` or
        ``max_tokens=0`` not supported) or an answer without them is a no, kept for the
        backend's life. Transient errors are retried (:attr:`probe_policy`); a server still
        unreachable after them raises :class:`~selfinstruct.errors.ServerUnavailable`
        (the run ends incomplete, and a resume asks again); a rejected key raises
        :class:`FatalBackendError`."""
        if self._whole is not None:
            return self._whole
        try:
            return call_with_retry(self._probe_once, self.probe_policy)
        except FatalBackendError:
            raise
        except TransientBackendError as exc:
            where = redact_url(self.base_url) if self.base_url else "the OpenAI API"
            raise ServerUnavailable(self._scrub(
                f"{where} did not answer whether it scores whole texts ({exc})")) from None

    def _probe_once(self) -> bool:
        """One probe (see :meth:`probe_whole_text_scoring`), under a lock so that requests
        in flight together ask once; raises transient errors, keeps any answer."""
        with self._whole_lock:
            if self._whole is None:
                prompt, choice = ECHO_PROBE
                try:
                    response = self._create(self._echo_params(prompt + choice))
                except (FatalBackendError, TransientBackendError):
                    raise
                except BackendError:  # echo, logprobs or max_tokens=0 refused
                    self._whole = False
                else:  # the text echoed, nothing after it, the choice's tokens scored
                    logprobs = _echo_logprobs(response)
                    tokens = getattr(logprobs, "tokens", None) or []
                    values = _choice_values(logprobs, prompt, choice)
                    self._whole = bool(
                        "".join(t for t in tokens if isinstance(t, str)).endswith(prompt + choice)
                        and values and any(v is not None for v in values))
            return self._whole

    def _echo_params(self, text: str) -> dict[str, Any]:
        return {"model": self.model, "prompt": text, "echo": True, "logprobs": 1,
                "max_tokens": 0, "temperature": 0.0}

    def _score_whole(self, request: Request) -> Completion:
        """Each choice scored as a whole text, one echo request per choice; no scores
        (``choice_logprobs`` None) from a server that cannot echo them."""
        started = time.perf_counter()
        if not self._probe_once():
            return Completion(text="", finish_reason="stop")
        scores: dict[str, float] = {}
        prompt_tokens = 0
        for choice in request.choices:
            response = self._create(self._echo_params(request.prompt + choice))
            score = whole_text_logprob(_echo_logprobs(response), request.prompt, choice)
            if score is None:
                return Completion(text="", finish_reason="stop",
                                  seconds=time.perf_counter() - started)
            scores[choice] = score
            usage = getattr(response, "usage", None)
            prompt_tokens += getattr(usage, "prompt_tokens", 0) or 0
        return scored(scores, prompt_tokens=prompt_tokens, seconds=time.perf_counter() - started)

    def _create(self, params: dict[str, Any], chat_prompt: str | None = None):
        """One call of the SDK (chat when ``chat_prompt`` is given), its errors mapped onto
        the error kinds of ``base.py``."""
        try:
            if chat_prompt is not None:
                return self._client.chat.completions.create(
                    messages=[{"role": "user", "content": chat_prompt}], **params
                )
            return self._client.completions.create(**params)
        except self._openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except self._openai.APITimeoutError as exc:  # a subclass of APIConnectionError
            raise TransientBackendError(self._scrub(f"{type(exc).__name__}: {exc}"),
                                        throttled=True) from None
        except self._openai.APIConnectionError as exc:
            raise TransientBackendError(self._scrub(f"{type(exc).__name__}: {exc}")) from None
        except (self._openai.OpenAIError, ValueError) as exc:  # malformed body and the like
            raise TransientBackendError(self._scrub(f"{type(exc).__name__}: {exc}")) from None

    def _one(self, request: Request) -> Completion:
        if request.choices and request.whole and not request.chat:
            return self._score_whole(request)
        s = request.sampling
        params: dict[str, Any] = {  # keyword arguments of the SDK's create()
            "model": self.model, "temperature": s.temperature, "top_p": s.top_p,
            "max_tokens": s.max_tokens, "presence_penalty": s.presence_penalty,
            "frequency_penalty": s.frequency_penalty,
            "stop": list(s.stop)[:4] or None,  # OpenAI accepts at most 4 stop sequences
        }
        if s.seed is not None:
            params["seed"] = s.seed
        if request.choices and not request.chat:
            # scoring: the top log-probabilities of the first token (vLLM and llama.cpp's
            # server return them; OpenAI's legacy completions cap them at 5)
            params.update(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS, stop=None)
        started = time.perf_counter()
        if request.chat:
            response = self._create(params, chat_prompt=request.prompt)
        else:
            response = self._create({"prompt": request.prompt, **params})
        return self._parse(response, request, time.perf_counter() - started)

    def _status_error(self, exc) -> BackendError:
        status = exc.status_code
        message = self._scrub(f"HTTP {status}: {exc.message}")
        if status in AUTH_STATUS:
            where = redact_url(self.base_url) if self.base_url else "the OpenAI API"
            return FatalBackendError(self._scrub(
                f"{where} refused the request ({message}); check the key in the "
                "environment variable named by --api-key-env, and --base-url"))
        if status in TRANSIENT_STATUS or status >= 500:
            retry_after = None
            header = exc.response.headers.get("retry-after") if exc.response is not None else None
            if header:
                try:
                    retry_after = float(header)
                except ValueError:
                    retry_after = None
                if retry_after is not None and not math.isfinite(retry_after):
                    retry_after = None
            return TransientBackendError(message, retry_after=retry_after,
                                         throttled=status in THROTTLE_STATUS)
        return BackendError(message)

    def _choice_logprobs(self, choice, request: Request) -> dict[str, float] | None:
        """Each choice's log-probability from the first token's top log-probabilities:
        the best token whose text equals the choice, up to surrounding space. A choice
        not among them gets the lowest listed value (an upper bound). None when the
        server returned no log-probabilities, or when a choice is several tokens long
        (the first token alone would not score it)."""
        logprobs = getattr(choice, "logprobs", None)
        tops = getattr(logprobs, "top_logprobs", None) if logprobs is not None else None
        if not tops or not tops[0]:
            return None
        first = dict(tops[0])
        floor = min(first.values())
        out = {}
        for wanted in request.choices:
            matches = [lp for token, lp in first.items() if token.strip() == wanted.strip()]
            out[wanted] = max(matches) if matches else floor
        return out

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
        if request.choices:
            scores = None if request.chat else self._choice_logprobs(choice, request)
            if scores is not None:
                return scored(scores, prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                              seconds=seconds)
            return Completion(text=text, finish_reason="stop", seconds=seconds)
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            seconds=seconds,
        )


def _echo_logprobs(response) -> Any:
    """The ``logprobs`` of an echo answer's first choice, or None."""
    choices = getattr(response, "choices", None) or []
    return getattr(choices[0], "logprobs", None) if choices else None


def whole_text_logprob(logprobs, prompt: str, choice: str) -> float | None:
    """The log-probability of ``choice`` after ``prompt``, from the ``logprobs`` of an
    echo answer (``echo=True``, ``max_tokens=0``) to the prompt ``prompt + choice``: the
    sum of ``token_logprobs`` over the tokens whose ``text_offset`` is at or past
    ``len(prompt)``. A token that straddles the end of ``prompt`` counts as the prompt's.

    Offsets are counted from the end of the echoed text (the last offset plus the last
    token's length, which is ``len(prompt + choice)`` on OpenAI's API): a server that puts
    a start-of-text token's text in front (vLLM echoes ``<|begin_of_text|>``) shifts every
    offset by that much, and the split stays where it belongs.

    Null log-probabilities add nothing. Only the first token of the text has one (nothing
    comes before it). Normally that is the prompt's first token, or the start-of-text
    token a server adds (then every token of the choice is scored). **An empty prompt** on
    a server that adds no start-of-text token leaves the choice's own first token null:
    the score is then that of the rest of the choice after its first token (0.0 for a
    one-token choice), which is all such a server can tell.

    None when there is nothing to read: no ``token_logprobs`` or ``text_offset``, lists of
    different lengths, or a non-empty choice in which no token starts (one token spans
    the end of the prompt and the whole choice)."""
    values = _choice_values(logprobs, prompt, choice)
    if values is None:
        return None
    return float(sum(value for value in values if value is not None))


def _choice_values(logprobs, prompt: str, choice: str) -> list[float | None] | None:
    """The ``token_logprobs`` of the choice's tokens (see :func:`whole_text_logprob`)."""
    values = getattr(logprobs, "token_logprobs", None) if logprobs is not None else None
    offsets = getattr(logprobs, "text_offset", None) if logprobs is not None else None
    tokens = getattr(logprobs, "tokens", None) if logprobs is not None else None
    if not values or not offsets or len(values) != len(offsets):
        return None
    shift = 0
    if tokens and len(tokens) == len(offsets) and isinstance(tokens[-1], str):
        shift = offsets[-1] + len(tokens[-1]) - len(prompt + choice)
    start = len(prompt) + shift
    inside = [value for offset, value in zip(offsets, values) if offset >= start]
    if choice and not inside:
        return None
    return inside


def scrub_forms(*secrets: str | None) -> list[str]:
    """Every form of ``secrets`` to scrub from what is stored or printed: each as it is,
    percent-encoded (``quote``, ``quote_plus``) and base64-encoded (standard and URL-safe,
    with and without padding), longest first; values under 4 characters are left out (they
    would scrub ordinary text)."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        encoded = base64.b64encode(secret.encode()).decode()
        urlsafe = base64.urlsafe_b64encode(secret.encode()).decode()
        forms.update({secret, quote(secret, safe=""), quote_plus(secret), encoded,
                      encoded.rstrip("="), urlsafe, urlsafe.rstrip("=")})
    return sorted((f for f in forms if len(f) >= 4), key=len, reverse=True)


def _url_secrets(base_url: str | None) -> list[str]:
    """The user name and password of ``base_url``, and ``user:password`` (what Basic auth
    encodes), each raw and percent-decoded."""
    if not base_url:
        return []
    try:
        parts = urlsplit(base_url)
    except ValueError:
        return []
    out = []
    for value in (parts.username, parts.password):
        if value:
            out += [value, unquote(value)]
    if parts.username is not None and parts.password is not None:
        out += [f"{parts.username}:{parts.password}",
                f"{unquote(parts.username)}:{unquote(parts.password)}"]
    return out
