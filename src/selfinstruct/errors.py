"""Every exception selfinstruct raises on purpose, in one tree.

```
SelfInstructError
├── UserError                 bad input or configuration: one line, exit code 2
│   └── FatalBackendError     every further request would fail too (a rejected key)
├── BackendError              a model call failed; retrying will not fix it
│   ├── TransientBackendError worth retrying: 429, 5xx, timeouts, dropped connections
│   └── FatalBackendError
├── BudgetExhausted           --max-tokens-total / --max-cost reached; the run is saved
└── RunIncomplete             requests still failed after their retries: exit code 4
    └── ServerUnavailable     the server failed for --give-up-after seconds: stop asking
```

Raise :class:`UserError` for anything the user can fix: a malformed seed file, an unknown
model name, an out-of-range option, a run directory made with other parameters. The
message names the file, line or field, and says what to do next. Never put an API key in
any of these messages.

A backend raises :class:`TransientBackendError` or :class:`BackendError`; the request loop
(:mod:`selfinstruct.backends.requests`) retries the first, records the second as a failed
request, and lets :class:`FatalBackendError` stop the run. The CLI turns ``UserError`` into
exit code 2, ``BudgetExhausted`` into exit code 3 and ``RunIncomplete`` into exit code 4.

Exit codes of the CLI: 0 done; 2 bad input or configuration; 3 stopped at a budget or the
request cap; 4 incomplete (requests failed for good, or the server stayed unreachable);
130 interrupted (Ctrl-C, SIGTERM).
"""

#: the CLI's exit code of a run that ended with requests still failed (status ``incomplete``)
EXIT_INCOMPLETE = 4


class SelfInstructError(Exception):
    """The root of the tree: ``except SelfInstructError`` catches every deliberate error."""


class UserError(SelfInstructError):
    """Bad input or configuration. The CLI prints ``selfinstruct: error: <message>``, exits 2."""

    #: the run option the error is about, when one is (a config file's reader names its line)
    field: str | None = None


class BackendError(SelfInstructError):
    """A backend failed in a way that retrying will not fix."""


class TransientBackendError(BackendError):
    """A failure worth retrying: rate limit, server error, timeout, reset connection.

    ``throttled``: the server is overloaded (429, 503, a timeout), so the adaptive
    concurrency of ``limiter.py`` sends less; other transient errors leave it as it is."""

    def __init__(self, message: str, retry_after: float | None = None,
                 throttled: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled


class FatalBackendError(BackendError, UserError):
    """A failure that every further request would meet too, such as a rejected key
    (HTTP 401 or 403): the run stops at once, with this one line and exit code 2, instead
    of recording each request as failed. Never retried, never turned into a failed
    completion."""


class BudgetExhausted(SelfInstructError):
    """The run reached ``--max-tokens-total`` or ``--max-cost``; its state is saved."""


class RunIncomplete(SelfInstructError):
    """Requests still failed after their retries: what was answered is saved, the run's
    status is ``incomplete``, its exports are not written, and the CLI exits with code 4
    (:data:`EXIT_INCOMPLETE`) after ``details``, one line per stage (asked, answered,
    failed, last error). Re-running the same command sends the failed requests again."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = list(details or [])


class ServerUnavailable(RunIncomplete):
    """The backend failed every attempt for ``--give-up-after`` seconds: the request loop
    stops sending instead of retrying every remaining request."""
