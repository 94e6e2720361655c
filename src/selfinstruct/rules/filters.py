"""The paper's filters. Each rule is a small function: ``None`` to keep, or a reason code.

Instruction rules (bootstrap), in the order the original code applies them:

==================  ===============================================================
``too_short``        3 words or fewer
``too_long``         more than 150 words
``blacklisted``      contains image(s), graph(s), picture(s), file(s), map(s), draw,
                     plot or "go to" as a whole word, any case
``write_a_program``  starts with "Write a program"
``punctuation``      starts with an ASCII punctuation character
``non_ascii``        starts with a non-ASCII character
==================  ===============================================================

The ROUGE-L novelty rule needs the pool, so it lives in the bootstrap stage
(:mod:`selfinstruct.novelty.index`). Instance rules are in :func:`instance_reject_reason`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from selfinstruct.records import Instance

BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
             "map", "maps", "draw", "plot", "go to")
_BLACKLIST_RE = re.compile(r"\b(" + "|".join(BLACKLIST) + r")\b", flags=re.IGNORECASE)


def too_short(text: str) -> str | None:
    return "too_short" if len(text.split()) <= 3 else None


def too_long(text: str) -> str | None:
    return "too_long" if len(text.split()) > 150 else None


def blacklisted(text: str) -> str | None:
    return "blacklisted" if _BLACKLIST_RE.search(text) else None


def write_a_program(text: str) -> str | None:
    return "write_a_program" if text.startswith("Write a program") else None


def punctuation(text: str) -> str | None:
    return "punctuation" if text and text[0] in string.punctuation else None


def non_ascii(text: str) -> str | None:
    return "non_ascii" if text and not text[0].isascii() else None


INSTRUCTION_RULES: tuple[Callable[[str], str | None], ...] = (
    too_short, too_long, blacklisted, write_a_program, punctuation, non_ascii,
)


def instruction_reject_reason(text: str) -> str | None:
    """The first rule that rejects ``text``, or None if it passes them all."""
    for rule in INSTRUCTION_RULES:
        reason = rule(text)
        if reason:
            return reason
    return None


def instance_reject_reason(instance: Instance) -> str | None:
    """The original's per-instance rules: input equals output, empty output, text ending
    with a colon (usually an unfinished generation)."""
    if instance.input == instance.output:
        return "input_equals_output"
    if instance.output == "":
        return "empty_output"
    if instance.input.strip().endswith(":") or instance.output.strip().endswith(":"):
        return "ends_with_colon"
    return None
