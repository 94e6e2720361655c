"""Stage 2: decide whether each kept instruction is a classification task.

Two rules (:mod:`selfinstruct.rules.classification`), chosen by the recipe or ``--classifier``:

- ``paper``: the few-shot Yes/No prompt with greedy decoding, 3 tokens, stop at a newline
  or ``Task``. As in the original, only an answer of exactly ``Yes`` (``Yes``/``yes``/
  ``YES``, surrounding space ignored) counts as classification.
- ``calibrated``: the prompt in several demonstration orders, scored: the log-probability
  margin of ``" Yes"`` over ``" No"``, standardised per prompt and averaged. The
  calibration (per-prompt centre and scale, threshold) is fitted first on the labelled
  seed tasks the prompt does not show; it and its leave-one-out accuracy go into the
  manifest (``classification_calibration``), and each record carries its score
  (``margin``), the threshold and the per-prompt margins. A backend that returns no
  log-probabilities falls back to the paper rule, and the manifest says so. Where the
  package ships the calibration of this model, seeds and templates
  (:mod:`selfinstruct.calibrations`: the bundled models on the bundled seeds and
  templates), the seed tasks are not scored at all: the manifest says
  ``"source": "shipped"`` and names the file; otherwise ``"source": "scored"``.

Resume: instructions already in ``classifications.jsonl`` are skipped; a request that
failed for good goes to ``failures.jsonl`` and is tried again on the next run. The seed
scores are cached like every request, in the cache that every run of the model shares
(:mod:`selfinstruct.run.shared_cache`): a resumed run refits the same threshold, and a new
run of the same model does not pay for them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfinstruct.backends.base import Request
from selfinstruct.backends.requests import batches
from selfinstruct.calibrations import calibration_key, find_shipped
from selfinstruct.errors import UserError
from selfinstruct.prompts import classification_prompt
from selfinstruct.rules.classification import (
    NO,
    YES,
    Calibration,
    calibrate,
    held_out_tasks,
    margin_of,
    paper_rule,
    scoring_requests,
    scoring_templates,
)
from selfinstruct.stages.context import ClassifyContext

STAGE = "classify"


@dataclass
class ClassifyResult:
    classified: int
    classification: int
    failed: int


def classify(ctx: ClassifyContext) -> ClassifyResult:
    instructions = ctx.run.instructions.recover()
    done = {r["id"] for r in ctx.run.classifications.recover()}
    todo = [r for r in instructions if r["id"] not in done]
    calibration = None
    if ctx.config.classification_rule == "calibrated" and todo:
        calibration = calibrate_on_seeds(ctx)
    if calibration is not None:
        failed = _classify_calibrated(ctx, todo, calibration, len(instructions) - len(todo))
    else:
        asked = instructions if batches(ctx.backend) else todo
        failed = _classify_paper(ctx, asked, done)
    labels = ctx.run.classifications.recover()
    return ClassifyResult(
        classified=len(labels),
        classification=sum(1 for r in labels if r["is_classification"]),
        failed=failed,
    )


def _classify_paper(ctx: ClassifyContext, instructions: list[dict], done: set[str]) -> int:
    """A batched model is asked every instruction, done or not (the cache answers the done
    ones), so that its groups, and so its answers, are the same on a resumed run."""
    requests = [
        Request(classification_prompt(ctx.templates, r["instruction"]),
                ctx.config.classification_sampling(), prefix=ctx.templates.classification,
                chat=ctx.config.chat)
        for r in instructions
    ]
    failed = 0
    total = len(done) + sum(1 for r in instructions if r["id"] not in done)
    with ctx.reporter.stage("classify", total) as bar:
        bar.advance(len(done))
        for offset, completion in ctx.ask(STAGE, requests):
            record = instructions[offset]
            if record["id"] in done:
                continue
            if not completion.ok:
                ctx.record_failure(record["id"], STAGE, completion.error)
                failed += 1
                continue
            ctx.run.classifications.append([{
                "id": record["id"],
                "instruction": record["instruction"],
                "is_classification": paper_rule(completion.text),
                "raw_answer": completion.text,
            }])
            bar.advance()
    return failed


def _classify_calibrated(ctx: ClassifyContext, todo: list[dict], calibration: Calibration,
                         already: int) -> int:
    """Every instruction scored with every prompt (prompt-major, so each prompt's prefix is
    evaluated once); an instruction's record is written when all its scores are in."""
    prompts = scoring_templates(ctx.templates)
    requests = scoring_requests(prompts, [r["instruction"] for r in todo])
    margins: list[list[float | None]] = [[None] * len(todo) for _ in prompts]
    errors: dict[int, str] = {}
    with ctx.reporter.stage("classify", (already + len(todo)) * len(prompts)) as bar:
        bar.advance(already * len(prompts))
        for offset, completion in ctx.ask(STAGE, requests):
            p, i = divmod(offset, len(todo))
            bar.advance()
            if not completion.ok:
                errors.setdefault(i, completion.error or "unknown error")
                continue
            margin = margin_of(completion)
            if margin is None:
                raise UserError("the backend stopped returning log-probabilities in the "
                                "middle of the classify stage; re-run with --classifier paper")
            margins[p][i] = margin
    for i, record in enumerate(todo):
        if i in errors:
            ctx.record_failure(record["id"], STAGE, errors[i])
            continue
        values = [float(m) for m in (row[i] for row in margins) if m is not None]
        score = calibration.score(values)
        ctx.run.classifications.append([{
            "id": record["id"],
            "instruction": record["instruction"],
            "is_classification": score > calibration.threshold,
            "raw_answer": YES.strip() if score > calibration.threshold else NO.strip(),
            "margin": round(score, 6),
            "threshold": round(calibration.threshold, 6),
            "margins": [round(v, 4) for v in values],
        }])
    return len(errors)


def calibrate_on_seeds(ctx: ClassifyContext) -> Calibration | None:
    """The calibration the package ships for this model, seeds and templates, or: score
    the held-out seed tasks with every prompt (through the shared cache) and fit it.
    Recorded in the manifest with its ``source``. A context that may not score the seeds
    (the preview) uses the shared cache's scores when it holds them all, and otherwise the
    paper rule, saying why. None, with the reason in the manifest, where the rule cannot be fitted:
    the backend gives no log-probabilities (found by its first answer, before the other
    requests are sent), or the seeds have too few labelled tasks and the recipe, not
    ``--classifier calibrated``, chose the rule."""
    tasks = held_out_tasks(ctx.seeds, ctx.templates)
    labels = [bool(t.is_classification) for t in tasks]
    if len(tasks) < 10 or not any(labels) or all(labels):
        why = (f"needs at least 10 labelled seed tasks of both kinds that the classification "
               f"prompt does not show; the seeds have {len(tasks)} ({sum(labels)} "
               f"classification)")
        if ctx.config.classifier == "calibrated":
            raise UserError(f"--classifier calibrated {why}")
        _paper_rule_instead(ctx, f"the calibrated rule {why}")
        return None
    prompts = scoring_templates(ctx.templates)
    shipped = find_shipped(calibration_key(ctx.backend.identity, tasks, prompts))
    if shipped is not None:
        ctx.record_calibration({"rule": "calibrated", "source": "shipped",
                                "file": f"selfinstruct/calibrations/{shipped.name}",
                                **shipped.calibration.as_dict()})
        return shipped.calibration
    requests = scoring_requests(prompts, [t.instruction for t in tasks])
    if not ctx.may_score_seeds and not all(
            c.ok for _, c in ctx.ask_shared("calibrate", requests)):
        if ctx.backend.identity.get("sha256"):  # its answers are shared (run/shared_cache)
            why = (f"no calibration of this model with these seeds and templates is shipped "
                   f"or in the shared cache yet (a run scores its {len(requests):,} seed-task "
                   f"prompts first, once per model and machine)")
        else:
            why = (f"the calibration scores {len(requests):,} seed-task prompts first, which "
                   f"the preview does not (a run does; this backend's answers are not shared "
                   f"between runs)")
        _paper_rule_instead(ctx, why)
        return None
    margins: list[list[float | None]] = [[None] * len(tasks) for _ in prompts]
    with ctx.reporter.stage("calibrate", len(requests)) as bar:
        # the first request alone: a backend without log-probabilities costs one request
        # (the full list below asks it again, from the cache, so the groups are the same)
        for _, completion in ctx.ask_shared("calibrate", requests[:1]):
            if completion.ok and margin_of(completion) is None:
                bar.note("no log-probabilities: the paper rule instead")
                _paper_rule_instead(ctx, "the backend returns no log-probabilities")
                return None
        for offset, completion in ctx.ask_shared("calibrate", requests):
            if not completion.ok:
                raise UserError(f"classification calibration: a seed task could not be scored "
                                f"({completion.error}); re-run to retry")
            p, i = divmod(offset, len(tasks))
            margins[p][i] = margin_of(completion)
            bar.advance()
    if any(m is None for row in margins for m in row):
        _paper_rule_instead(ctx, "the backend returns no log-probabilities")
        return None
    calibration = calibrate([[float(m) for m in row if m is not None] for row in margins],
                            labels)
    ctx.record_calibration({"rule": "calibrated", "source": "scored", **calibration.as_dict()})
    return calibration


def _paper_rule_instead(ctx: ClassifyContext, why: str) -> None:
    """The manifest says why the calibrated rule gave way to the paper's."""
    ctx.record_calibration({"rule": "paper", "note": f"{why}; the paper rule was used"})
