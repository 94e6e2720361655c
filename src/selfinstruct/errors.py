"""The one exception type the CLI turns into a one-line message and exit code 2.

Raise :class:`UserError` for anything the user can fix: a malformed seed file, an unknown
model name, an out-of-range option, a run directory made with other parameters. The
message names the file, line or field, and says what to do next. Never put an API key in it.
"""


class UserError(Exception):
    """Bad input or configuration. The CLI prints ``selfinstruct: error: <message>``, exits 2."""

    #: the run option the error is about, when one is (a config file's reader names its line)
    field: str | None = None
