"""Zero-shot SuperNI generation: prompt, decode greedily, trim, append, then score.

Prompt (``--template tk``, the default) is Tk-Instruct's definition-only ("pos 0")
encoding from ``src/ni_collator.py``, as its ``run_gpt3.py`` sends it to a completion
model (the whole prompt ``.strip()``-ed, so it ends in ``Output:`` without a space)::

    Definition: {definition.strip()}[.]

    Now complete the following example -
    Input: {input.strip()}[.]
    Output:

``[.]`` is a full stop added when the text does not already end in ASCII punctuation.
``--template self-instruct`` uses the project's evaluation prompt instead
(``human_eval_prompt_with_input`` in ``finetuning_templates.json``:
``{definition}\\n\\nInput: {input}\\nOutput:``), for models fine-tuned on its exports.

Decoding: temperature 0, top_p 1, at most 128 new tokens (Tk-Instruct's
``max_target_length``), no stop sequences, so that a model that opens with a blank line
(text-davinci-00x often do) is not cut to nothing by a ``"\\n\\n"`` stop. With
``--trim paragraph`` the request says ``first_paragraph_only``: the embedded backend then
stops once a non-blank paragraph is followed by a blank line, which cannot change the
trimmed prediction and saves most of the 128 tokens of a model that rambles on.

Trimming (``--trim``), applied to the completion text before it is written:

- ``paragraph`` (default): strip, then keep the text before the first blank line
  (``"\\n\\n"``), strip again. SuperNI references are one paragraph; a completion model
  that goes on with a new ``Input:`` or another example is cut there.
- ``tk-gpt3``: Tk-Instruct's own GPT-3 post-processing, ``text.strip().split(".")[0]``.
- ``none``: strip only (what Tk-Instruct scored for its own seq2seq models; the scorer
  ignores whitespace anyway).

Context: with the embedded model, an instance input that does not fit ``n_ctx`` minus
128 tokens is shortened (see :mod:`selfinstruct.evaluation.fit`) and its prediction
record says ``"input_truncated": true``. No shared prefix is passed to the backend: the
definitions are short (a few dozen tokens) and per-task states would pile up in memory.

Output, in ``--out DIR``: ``predictions.jsonl`` (``{"id", "task", "prediction",
"completion", "finish_reason"}`` per line; append-only, fsynced; ids already present are
skipped on a re-run), ``metrics.json`` (scores of the selected instances, see
:mod:`selfinstruct.evaluation.superni`), ``cache.sqlite``, ``run.json``.
A request that fails for good writes nothing, is scored as empty, and is retried on the
next run.
"""

from __future__ import annotations

import json
import string
import time
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

from selfinstruct.backends.base import Backend, Request, Sampling
from selfinstruct.backends.requests import batches
from selfinstruct.errors import UserError
from selfinstruct.evaluation.answering import Tally, answers
from selfinstruct.evaluation.eval_dir import open_eval_dir, record_session
from selfinstruct.evaluation.fit import fit_prompt, token_counter
from selfinstruct.evaluation.superni import SuperNIInstance, SuperNIScores, score
from selfinstruct.files import atomic_write_text, file_sha256
from selfinstruct.progress import Reporter, SilentReporter
from selfinstruct.run.rundir import JsonlLog

TEMPLATES = ("tk", "self-instruct")
TRIMS = ("paragraph", "tk-gpt3", "none")
MAX_NEW_TOKENS = 128


def _end_with_punctuation(text: str) -> str:
    return text if text and text[-1] in string.punctuation else text + "."


@lru_cache(maxsize=1)
def _eval_with_input() -> str:
    from selfinstruct.prompts import PromptTemplates

    return PromptTemplates.load().eval_with_input


def build_prompt(template: str, definition: str, input_text: str) -> str:
    """The zero-shot prompt of one instance (see the module docstring for the layouts)."""
    if template == "tk":
        head = _end_with_punctuation("Definition: " + definition.strip())
        body = _end_with_punctuation("Now complete the following example -\nInput: "
                                     + input_text.strip())
        return f"{head}\n\n{body}\nOutput:"
    if template == "self-instruct":
        return _eval_with_input().format(instruction=definition.strip(),
                                         input=input_text.strip())
    raise UserError(f"--template must be one of {', '.join(TEMPLATES)}, got '{template}'")


def shared_prefix(template: str, definition: str) -> str:
    """The part of every prompt of a task that comes before its input, cut after a newline
    (a token boundary): the embedded model evaluates it once per task and reuses it."""
    a, b = build_prompt(template, definition, "a"), build_prompt(template, definition, "b")
    common = a[:next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))]
    return common[:common.rfind("\n") + 1]


def trim(text: str, mode: str) -> str:
    """The prediction written for a completion (see the module docstring)."""
    if mode == "paragraph":
        return text.strip().split("\n\n", 1)[0].strip()
    if mode == "tk-gpt3":
        return text.strip().split(".")[0]
    if mode == "none":
        return text.strip()
    raise UserError(f"--trim must be one of {', '.join(TRIMS)}, got '{mode}'")


def select(instances: list[SuperNIInstance], tasks: list[str] | None = None,
           max_per_task: int | None = None) -> list[SuperNIInstance]:
    """The instances to run: of the named tasks (all when None), the first N of each."""
    if max_per_task is not None and max_per_task < 1:
        raise UserError(f"--max-per-task must be at least 1, got {max_per_task}")
    known = {inst.task for inst in instances}
    if tasks:
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise UserError(f"--tasks: {', '.join(unknown)} not in the data file "
                            f"({len(known)} tasks, e.g. {min(known)})")
    wanted = set(tasks) if tasks else known
    taken: dict[str, int] = {}
    chosen = []
    for inst in instances:
        if inst.task not in wanted:
            continue
        if max_per_task is not None and taken.get(inst.task, 0) >= max_per_task:
            continue
        taken[inst.task] = taken.get(inst.task, 0) + 1
        chosen.append(inst)
    return chosen


@dataclass(frozen=True)
class SuperNIRunSettings:
    """What decides every prediction; a resumed run must use the same."""

    template: str = "tk"
    trim: str = "paragraph"
    max_new_tokens: int = MAX_NEW_TOKENS
    chat: bool = False

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise UserError(f"--template must be one of {', '.join(TEMPLATES)}, "
                            f"got '{self.template}'")
        if self.trim not in TRIMS:
            raise UserError(f"--trim must be one of {', '.join(TRIMS)}, got '{self.trim}'")
        if self.max_new_tokens < 1:
            raise UserError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")


@dataclass
class SuperNIRunResult:
    selected: int
    already_done: int
    generated: int
    failed: int
    truncated: int
    wall_seconds: float
    scores: SuperNIScores
    first_error: str | None = None
    usage: dict = field(default_factory=dict)


def run_superni(backend: Backend, model: dict, data_path: str | Path,
                instances: list[SuperNIInstance], out: str | Path,
                settings: SuperNIRunSettings = SuperNIRunSettings(), *,
                max_concurrency: int = 1, reporter: Reporter | None = None) -> SuperNIRunResult:
    """Generate the missing predictions of ``instances`` into ``out``, then score them.

    ``model`` is the backend's :class:`ModelInfo` as a dict; it goes into ``run.json``.
    """
    started = time.perf_counter()
    reporter = reporter or SilentReporter()
    folder = Path(out)
    manifest = open_eval_dir(folder, "eval superni run", {
        "model": model, "data_sha256": file_sha256(data_path),
        "template": settings.template, "trim": settings.trim,
        "max_new_tokens": settings.max_new_tokens, "chat": settings.chat,
    })
    log = JsonlLog(folder / "predictions.jsonl")
    done = {rec["id"] for rec in log.recover()}
    todo = [inst for inst in instances if inst.id not in done]
    # a batched model is asked every selected instance, done or not (the cache answers the
    # done ones), so that it decodes the same groups on a resumed run

    counter = token_counter(backend)
    # with --trim paragraph only the first paragraph is kept, so the embedded model may stop
    # there: the same predictions, several times fewer tokens for a model that rambles on
    sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=settings.max_new_tokens,
                        first_paragraph_only=settings.trim == "paragraph")
    asked = instances if batches(backend) else todo
    requests, truncated = [], []
    for inst in asked:
        prompt, cut = fit_prompt(
            partial(build_prompt, settings.template, inst.definition),
            inst.input, settings.max_new_tokens, counter)
        prefix = shared_prefix(settings.template, inst.definition)
        requests.append(Request(prompt, sampling, chat=settings.chat,
                                prefix=prefix if prefix and prompt.startswith(prefix) and
                                not settings.chat else None))
        truncated.append(cut)

    tally = Tally()
    for i, completion in answers(backend, requests, folder, reporter, "superni",
                                 max_concurrency, tally):
        if asked[i].id in done:
            continue
        record: dict[str, object] = {
            "id": asked[i].id, "task": asked[i].task,
            "prediction": trim(completion.text, settings.trim),
            "completion": completion.text, "finish_reason": completion.finish_reason}
        if truncated[i]:
            record["input_truncated"] = True
        log.append([record])
    failed, first_error, stats = tally.failed, tally.first_error, tally.stats

    predictions = {rec["id"]: rec["prediction"] for rec in log.recover()}
    with reporter.stage("score", len(instances)) as bar:
        scores = score(instances, predictions, on_instance=bar.advance)
    metrics = scores.as_dict()
    metrics.pop("unknown_prediction_ids")  # the file may hold other selections' ids
    metrics["selection"] = {"tasks": len(scores.per_task), "instances": len(instances)}
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    wall = time.perf_counter() - started
    result = SuperNIRunResult(
        selected=len(instances), already_done=len(instances) - len(todo),
        generated=len(todo) - failed, failed=failed, truncated=sum(truncated),
        wall_seconds=wall, scores=scores, first_error=first_error, usage=stats.as_dict())
    record_session(folder, manifest, {
        "wall_seconds": round(wall, 1), "selected": result.selected,
        "generated": result.generated, "failed": failed, "truncated": result.truncated,
        "usage": result.usage, "rougeL": metrics["rougeL"],
        "exact_match": metrics["exact_match"],
    })
    return result
