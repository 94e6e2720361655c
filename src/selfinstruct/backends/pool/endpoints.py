"""Several OpenAI-compatible servers of one model as one backend (``--base-url`` repeated).

The run configuration keeps ``base_url`` a single string, the URLs joined by commas, so a
single-URL run reads, compares and caches exactly as before: its manifest, its cache
keys and its resume checks are unchanged. Several URLs become one
:class:`OpenAICompatBackend` each, pooled in a :class:`BalancedBackend`; the pool's
identity names the model and the whole list, so the cache of a pooled run does not depend
on which server answered which request.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from selfinstruct.backends.pool.balanced import BalancedBackend
from selfinstruct.errors import UserError


def split_base_urls(value: str) -> list[str]:
    """``"http://a/v1, http://b/v1"`` -> ``["http://a/v1", "http://b/v1"]``; empty items
    are an error, not skipped, because they are a typo in a list the user wrote."""
    urls = [part.strip() for part in value.split(",")]
    if any(not url for url in urls):
        raise UserError(f"--base-url: empty URL in {redact_base_urls(value)!r}")
    return urls


# Query parameters that carry a credential (``?api_key=...``), redacted like a password.
_SECRET_PARAM = re.compile(r"(?i)^(api[_-]?key|key|token|access[_-]?token|secret|password|"
                           r"passwd|auth|authorization|sig|signature)$")
# ``scheme://userinfo@`` anywhere in a text (an error message, a diff of parameters).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@")
REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` with its credentials replaced by ``***``: the ``user:password@`` part and
    the values of query parameters such as ``api_key``. For anything printed or stored."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL; still hide a user:password@ in it
        return _USERINFO.sub(rf"\1{REDACTED}@", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, sep, value = pair.partition("=")
            pairs.append(f"{name}={REDACTED}" if sep and value and _SECRET_PARAM.match(name)
                         else pair)
        query = "&".join(pairs)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_base_urls(value: str | None) -> str | None:
    """A ``--base-url`` value (one URL or several joined by commas), redacted."""
    if value is None:
        return None
    return ",".join(redact_url(part.strip()) for part in value.split(","))


def redact_text(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` in it redacted."""
    return _USERINFO.sub(rf"\1{REDACTED}@", text)


def has_redacted_credentials(value: str | None) -> bool:
    """Whether ``value`` is a redacted URL (as a manifest stores one), unusable as is."""
    if not value:
        return False
    return f"{REDACTED}@" in value or f"={REDACTED}" in value


def public_url(url: str) -> str:
    """The URL without any user:password part, for labels in the manifest."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def open_endpoints(model: str, urls: list[str], *, api_key_env: str,
                   timeout: float) -> BalancedBackend:
    from selfinstruct.backends.openai_compat import OpenAICompatBackend

    members = []
    for url in urls:
        member = OpenAICompatBackend(model, base_url=url, api_key_env=api_key_env,
                                     timeout=timeout)
        member.check_connection()
        members.append(member)
    identity = {"backend": "openai", "model": model,
                "base_url": ",".join(redact_url(u) for u in urls)}
    return BalancedBackend(members, labels=[public_url(redact_url(u)) for u in urls], identity=identity)
