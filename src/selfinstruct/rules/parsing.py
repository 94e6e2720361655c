"""Turn raw model text into records. Never raises: anything unusable becomes a reason.

- :func:`split_instructions`: a bootstrap continuation (``" first\\n10. second\\n..."``)
  into cleaned candidate instructions, as the original does: split on ``\\n<number>.``,
  collapse whitespace, strip, ``str.capitalize()`` (a quirk of the original: it lowercases
  the rest of the text), drop empties.
- :func:`candidate_decisions`: each candidate of one bootstrap completion with the reason it
  is rejected (the rule filters and the truncation rule; not the ROUGE-L novelty test,
  which needs the pool), or None.
- :func:`parse_generation_instances` / :func:`parse_classification_instances`: the
  ``Example N`` / ``Input:`` / ``Output:`` blocks and the ``Class label:`` blocks.

Deliberate differences from the original, each for determinism or safety, not results:
duplicate instances are removed keeping the first occurrence in order (the original
used ``set``, whose order changes between Python processes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selfinstruct.records import Instance
from selfinstruct.rules.filters import instruction_reject_reason

_NUMBERED = re.compile(r"\n\d+\s?\. ")
_WHITESPACE = re.compile(r"\s+")
_OUTPUT = re.compile(r"Output\s*\d*\s*:")
_INPUT = re.compile(r"Input\s*\d*\s*:")
_INPUT_PREFIX = re.compile(r"^Input\s*\d*\s*:")
_EXAMPLE = re.compile(r"Example\s?\d*\.?")


def split_instructions(text: str) -> list[str]:
    """Candidate instructions in order, cleaned; empty pieces dropped."""
    pieces = []
    for raw in _NUMBERED.split(text):
        cleaned = _WHITESPACE.sub(" ", raw).strip().capitalize()
        if cleaned:
            pieces.append(cleaned)
    return pieces


TRUNCATED = "truncated"


def candidate_decisions(text: str, finish_reason: str | None,
                        drop_truncated_completion: bool) -> list[tuple[str, str | None]]:
    """Each candidate of a bootstrap completion, in order, with its reject reason or None.

    A completion that hit ``max_tokens`` (``finish_reason == "length"``) loses every
    candidate when ``drop_truncated_completion`` (the original code, the paper recipe),
    else only its last, unfinished one (the refined recipe); those become ``"truncated"``
    whatever the other rules say. The others get the first rule of
    :func:`selfinstruct.rules.filters.instruction_reject_reason` that rejects them.
    """
    candidates = split_instructions(text)
    truncated = finish_reason == "length"
    decisions = []
    for position, candidate in enumerate(candidates):
        if truncated and (drop_truncated_completion or position == len(candidates) - 1):
            reason: str | None = TRUNCATED
        else:
            reason = instruction_reject_reason(candidate)
        decisions.append((candidate, reason))
    return decisions


@dataclass
class ParsedInstances:
    """Instances parsed from one completion, and what was dropped on the way."""

    instances: list[Instance] = field(default_factory=list)
    dropped: list[tuple[Instance | None, str]] = field(default_factory=list)

    def drop(self, instance: Instance | None, reason: str) -> None:
        self.dropped.append((instance, reason))


def _split_input_output(text: str) -> Instance:
    if _OUTPUT.search(text):
        parts = _OUTPUT.split(text)
        inp, out = parts[0].strip(), parts[1].strip()
    else:
        inp, out = "", text.strip()
    if _INPUT.search(out):  # several pairs run together: keep the first output
        out = _INPUT.split(out)[0].strip()
    inp = _INPUT_PREFIX.sub("", inp).strip()
    return Instance(inp, out)


def parse_generation_instances(text: str, truncated: bool) -> ParsedInstances:
    """Input-first completions: ``Example N`` blocks, or one bare ``Output:`` block."""
    result = ParsedInstances()
    text = text.strip()
    if _EXAMPLE.search(text):
        blocks = [b.strip() for b in _EXAMPLE.split(text) if b.strip()]
        instances = [_split_input_output(block) for block in blocks]
    elif _OUTPUT.search(text):
        instances = [_split_input_output(text)]
    else:
        instances = []
    if not instances:
        result.drop(None, "unparseable")
        return result
    if truncated and instances:
        result.drop(instances.pop(), "truncated")
    result.instances = instances
    return result


def parse_classification_instances(text: str, truncated: bool) -> ParsedInstances:
    """Output-first completions: ``Class label: <label>`` then the input on later lines."""
    result = ParsedInstances()
    if "Class label:" not in text:
        result.drop(None, "unparseable")
        return result
    instances = []
    for block in text.split("Class label:")[1:]:
        fields = block.strip().split("\n", 1)
        label = fields[0].strip()
        inp = fields[1].strip() if len(fields) == 2 else ""
        instances.append(Instance(inp, label))
    if truncated and instances:
        result.drop(instances.pop(), "truncated")
    result.instances = instances
    return result
