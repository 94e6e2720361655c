"""Several OpenAI-compatible servers of one model as one backend (``--base-url`` repeated).

The run configuration keeps ``base_url`` a single string, the URLs joined by commas, so a
single-URL run reads, compares and caches exactly as before: its manifest, its cache
keys and its resume checks are unchanged. Several URLs become one
:class:`OpenAICompatBackend` each, pooled in a :class:`BalancedBackend`; the pool's
identity names the model and the whole list, so the cache of a pooled run does not depend
on which server answered which request.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from selfinstruct.backends.balanced import BalancedBackend
from selfinstruct.errors import UserError


def split_base_urls(value: str) -> list[str]:
    """``"http://a/v1, http://b/v1"`` -> ``["http://a/v1", "http://b/v1"]``; empty items
    are an error, not skipped, because they are a typo in a list the user wrote."""
    urls = [part.strip() for part in value.split(",")]
    if any(not url for url in urls):
        raise UserError(f"--base-url: empty URL in {value!r}")
    return urls


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
    identity = {"backend": "openai", "model": model, "base_url": ",".join(urls)}
    return BalancedBackend(members, labels=[public_url(u) for u in urls], identity=identity)
