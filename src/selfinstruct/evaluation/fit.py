"""Make a prompt fit a model's context window by shortening one field of it.

Evaluation prompts have one long, variable part (a SuperNI instance input, a response to
judge). When a backend can count tokens (the embedded llama.cpp one has ``tokenize`` and
``n_ctx``), :func:`fit_prompt` cuts that part, keeping its beginning and appending
``TRUNCATION_MARK``, until prompt plus ``max_new_tokens`` fits. The rest of the prompt (the
definition, the rubric, the closing ``Output:``) is never cut. A server backend cannot
count tokens here; its prompts are sent whole and an overflow comes back as a failed request.
"""

from __future__ import annotations

from collections.abc import Callable

TRUNCATION_MARK = " [...]"


def token_counter(backend) -> tuple[Callable[[str], int], int] | None:
    """``(count_tokens, n_ctx)`` when the backend can count tokens, else None."""
    tokenize = getattr(backend, "tokenize", None)
    n_ctx = getattr(backend, "n_ctx", None)
    if tokenize is None or not isinstance(n_ctx, int):
        return None
    return (lambda text: len(tokenize(text))), n_ctx


def fit_prompt(render: Callable[[str], str], text: str, max_new_tokens: int,
               counter: tuple[Callable[[str], int], int] | None) -> tuple[str, bool]:
    """``(prompt, truncated)``: ``render(text)``, with ``text`` shortened if it must be.

    Binary search on the number of characters kept, so at most ~log2(len(text)) renders
    are tokenized. If even an empty ``text`` does not fit, the full prompt is returned and
    the backend reports the overflow.
    """
    prompt = render(text)
    if counter is None:
        return prompt, False
    count, n_ctx = counter
    budget = n_ctx - max_new_tokens
    if count(prompt) <= budget:
        return prompt, False
    lo, hi = 0, len(text)  # the longest fitting prefix length lies in [lo, hi)
    if count(render(TRUNCATION_MARK)) > budget:
        return prompt, False
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(render(text[:mid].rstrip() + TRUNCATION_MARK)) <= budget:
            lo = mid
        else:
            hi = mid
    return render(text[:lo].rstrip() + TRUNCATION_MARK), True
