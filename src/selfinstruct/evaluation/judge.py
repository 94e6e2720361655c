"""An LLM judge that rates responses on the paper's A/B/C/D scale, through any backend.

Prompt: ``JUDGE_RUBRIC`` (the scale, what to judge, the answer format, four short worked
examples, one per level; written for this project, ending with the item's first header
line ``### Instruction:``) followed by the item::

    ### Instruction:        <- the last line of JUDGE_RUBRIC
    {instruction}

    ### Input:
    {input, or "(none)"}

    ### Response:
    {response, stripped; "(empty)" when empty}

    ### Evaluation:
    Rating:

The prompt ends in ``Rating:`` so that a completion model's first token is the letter;
the reasoning comes on the next line (``Reasoning: ...``): it justifies the letter, it is
not a chain of thought before it. The rubric is passed as the request ``prefix``, so the
embedded backend evaluates it once for all items. A response too long for the embedded
model's context is shortened (see :mod:`selfinstruct.evaluation.fit`).

Decoding: greedy, at most 96 new tokens, stop at ``"\\n###"`` (a completion model that
goes on to invent the next item). Parsing (:func:`parse_rating`), first match wins:

1. a line ``Rating: X`` (any case, optional ``*``/``(``) anywhere in the reply;
2. the reply starts with a bare letter: ``" B"``, ``"B."``, ``"(C)"``, ``"D\\n..."``, which is
   the continuation of the prompt's ``Rating:``; a word such as "A good answer" is not a
   rating;
3. ``rating/grade is X`` or ``rate it X`` in the text.

Nothing found: the rating is recorded as null with ``parse_error`` and the raw reply, so
unparseable replies are counted, never dropped. Records go to ``DIR/ratings.jsonl`` in the
format described in :mod:`selfinstruct.evaluation.ratings`, with ``rater =
"judge:<model>"``. A request that fails for good is not recorded and is retried on the
next run.

What it leaves out: position or pairwise comparison (the paper rates each response on
its own), and showing the judge the task's reference output.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from selfinstruct.backends.base import Backend, Request, Sampling
from selfinstruct.errors import UserError
from selfinstruct.evaluation.answering import Tally, answers
from selfinstruct.evaluation.eval_dir import open_eval_dir, record_session
from selfinstruct.evaluation.fit import fit_prompt, token_counter
from selfinstruct.evaluation.ratings import rated_keys, rating_record, ratings_log
from selfinstruct.evaluation.user_oriented import Response
from selfinstruct.progress import Reporter, SilentReporter

JUDGE_MAX_TOKENS = 96
JUDGE_STOP = ("\n###",)

JUDGE_RUBRIC = """\
You rate how well a response carries out a user's instruction. Use this four-level scale \
(from the human evaluation of the Self-Instruct paper):

A: The response is valid and satisfying.
B: The response is acceptable but has minor errors or imperfections.
C: The response is relevant and responds to the instruction, but it has significant errors \
in the content. For example, a valid answer comes first and is followed by unrelated text.
D: The response is irrelevant or completely invalid. For example, it is empty, it repeats \
the instruction or the input, or it is about something else.

Judge whether the response does what the instruction asks for the given input; a response \
need not match any particular wording. Give the rating letter first, then one or two \
sentences of reasoning, in this form:
Rating: <A, B, C or D>
Reasoning: <why>

### Instruction:
Convert the temperature from Fahrenheit to Celsius.

### Input:
212°F

### Response:
212°F is 100°C.

### Evaluation:
Rating: A
Reasoning: The conversion is correct and it answers exactly what was asked.

### Instruction:
Suggest a title for a blog post on the given topic.

### Input:
Ten ways to save money on groceries

### Response:
10 Smart Ways to Save Money on Grocerys

### Evaluation:
Rating: B
Reasoning: A fitting, catchy title, but "Grocerys" is misspelled.

### Instruction:
Translate the sentence into French.

### Input:
I like to read books.

### Response:
J'aime lire des livres. Input: I like to swim. Output: J'aime nager. Input: I like cats.

### Evaluation:
Rating: C
Reasoning: The translation is right, but the response goes on with unrelated made-up \
examples.

### Instruction:
Give three synonyms for the word "happy".

### Input:
(none)

### Response:
Give three synonyms for the word "happy".

### Evaluation:
Rating: D
Reasoning: The response only repeats the instruction and gives no synonyms.

### Instruction:"""


def judge_prompt(instruction: str, input_text: str, response: str) -> str:
    """The full prompt for one item; ``JUDGE_RUBRIC`` is its prefix."""
    return (f"{JUDGE_RUBRIC}\n{instruction.strip()}\n\n### Input:\n"
            f"{input_text.strip() or '(none)'}\n\n### Response:\n"
            f"{response.strip() or '(empty)'}\n\n### Evaluation:\nRating:")


_RATING_LINE = re.compile(r"(?m)^[\s*#>_-]*(?i:rating)[\s*]*[:=\-][\s*]*[(\[]*([ABCD])\b")
_LEADING = re.compile(r"^\s*[*(\[]*([ABCD])[*)\]]*\s*(?:$|[\n.:,;!\-])")
_INLINE = re.compile(r"\b(?i:rating|grade)\s+(?i:is|of|would be|:)\s*[*(\[\"']*([ABCD])\b"
                     r"|\b(?i:rate)\s+(?i:it|this|the response)\s+(?i:as\s+)?[*(\[\"']*"
                     r"([ABCD])\b")
_REASONING = re.compile(r"(?is)\breasoning[\s*]*[:\-][\s*]*(.*)")


def parse_rating(reply: str) -> tuple[str | None, str, str | None]:
    """``(rating, reasoning, parse_error)`` from a judge's reply (see the module docstring)."""
    text = reply.split("\n###", 1)[0]
    rating = None
    for pattern in (_RATING_LINE, _LEADING, _INLINE):
        match = pattern.search(text)
        if match:
            rating = next(g for g in match.groups() if g)
            break
    found = _REASONING.search(text)
    if found:
        reasoning = found.group(1).strip()
    elif rating is not None and match is not None:  # the match that gave the rating
        reasoning = text[match.end():].lstrip(" \n:.-*)").rstrip()
    else:
        reasoning = text.strip()
    if rating is None:
        return None, reasoning, "no rating letter A-D found in the judge's reply"
    return rating, reasoning, None


@dataclass
class JudgeResult:
    rated: int
    already_rated: int
    unparsed: int
    failed: int
    truncated: int
    wall_seconds: float
    first_error: str | None = None


def judge(backend: Backend, judge_model: dict, responses: list[Response], out: str | Path, *,
          max_tokens: int = JUDGE_MAX_TOKENS, chat: bool = False, max_concurrency: int = 1,
          reporter: Reporter | None = None) -> JudgeResult:
    """Rate every response not yet rated by this judge into ``out/ratings.jsonl``."""
    if max_tokens < 1:
        raise UserError(f"--max-tokens must be at least 1, got {max_tokens}")
    started = time.perf_counter()
    reporter = reporter or SilentReporter()
    folder = Path(out)
    rater = f"judge:{judge_model['name']}"
    manifest = open_eval_dir(folder, "eval user-oriented judge", {
        "judge": judge_model, "rater": rater, "max_tokens": max_tokens, "chat": chat,
        "rubric_sha256": hashlib.sha256(JUDGE_RUBRIC.encode()).hexdigest(),
        "stop": list(JUDGE_STOP),
    })
    log = ratings_log(folder)
    done = rated_keys(log.recover())
    todo = [r for r in responses if (rater, r.model, r.instance_id) not in done]

    counter = token_counter(backend)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens, stop=JUDGE_STOP)
    requests, truncated = [], 0
    for r in todo:
        prompt, cut = fit_prompt(partial(judge_prompt, r.instruction, r.input),
                                 r.response.strip(), max_tokens, counter)
        truncated += cut
        requests.append(Request(prompt, sampling, prefix=JUDGE_RUBRIC, chat=chat))

    tally, unparsed = Tally(), 0
    for i, completion in answers(backend, requests, folder, reporter, "judge",
                                 max_concurrency, tally):
        rating, reasoning, error = parse_rating(completion.text)
        unparsed += rating is None
        item = todo[i]
        log.append([rating_record(item.model, item.instance_id, rater, rating, reasoning,
                                  error, completion.text)])
    failed, first_error, stats = tally.failed, tally.first_error, tally.stats
    wall = time.perf_counter() - started
    result = JudgeResult(len(todo) - failed, len(responses) - len(todo), unparsed, failed,
                         truncated, wall, first_error)
    record_session(folder, manifest, {"wall_seconds": round(wall, 1), "rated": result.rated,
                                      "unparsed": unparsed, "failed": failed,
                                      "usage": stats.as_dict()})
    return result
