"""Stage 2: decide whether each kept instruction is a classification task.

Two rules (:mod:`selfinstruct.classification`), chosen by the recipe or ``--classifier``:

- ``paper``: the few-shot Yes/No prompt with greedy decoding, 3 tokens, stop at a newline
  or ``Task``. As in the original, only an answer of exactly ``Yes`` (``Yes``/``yes``/
  ``YES``, surrounding space ignored) counts as classification.
- ``calibrated``: the same prompt, scored: the log-probability margin of ``" Yes"`` over
  ``" No"``. The threshold is fitted first on the labelled seed tasks the prompt does not
  show; the threshold and its leave-one-out accuracy go into the manifest
  (``classification_calibration``), and each record carries its margin. A backend that
  returns no log-probabilities falls back to the paper rule, and the manifest says so.

Resume: instructions already in ``classifications.jsonl`` are skipped; a request that
failed for good goes to ``failures.jsonl`` and is tried again on the next run. The seed
scores are cached like every request, so a resumed run refits the same threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfinstruct.backends.base import Request
from selfinstruct.classification import (
    Calibration,
    calibrate,
    held_out_tasks,
    margin_of,
    paper_rule,
    scoring_request,
)
from selfinstruct.context import RunContext
from selfinstruct.errors import UserError
from selfinstruct.executor import run_requests
from selfinstruct.prompts import classification_prompt

STAGE = "classify"


@dataclass
class ClassifyResult:
    classified: int
    classification: int
    failed: int


def classify(ctx: RunContext) -> ClassifyResult:
    instructions = ctx.run.instructions.open()
    done = {r["id"] for r in ctx.run.classifications.open()}
    todo = [r for r in instructions if r["id"] not in done]
    calibration = None
    if ctx.config.classification_rule == "calibrated" and todo:
        calibration = calibrate_on_seeds(ctx)
    if calibration is not None:
        requests = [scoring_request(ctx.templates, r["instruction"]) for r in todo]
    else:
        requests = [
            Request(classification_prompt(ctx.templates, r["instruction"]),
                    ctx.config.classification_sampling(), prefix=ctx.templates.classification,
                    chat=ctx.config.chat)
            for r in todo
        ]
    failed = 0
    with ctx.reporter.stage("classify", len(instructions)) as bar:
        bar.advance(len(done))
        for offset, completion in run_requests(
            ctx.backend, requests, cache=ctx.cache, max_concurrency=ctx.config.max_concurrency,
            stats=ctx.usage(STAGE), budget=ctx.budget,
        ):
            record = todo[offset]
            if not completion.ok:
                ctx.run.failures.append([{"id": record["id"], "stage": STAGE,
                                          "reason": completion.error}])
                failed += 1
                continue
            if calibration is not None:
                margin = margin_of(completion)
                if margin is None:
                    raise UserError("the backend stopped returning log-probabilities in the "
                                    "middle of the classify stage; re-run with "
                                    "--classifier paper")
                ctx.run.classifications.append([{
                    "id": record["id"],
                    "instruction": record["instruction"],
                    "is_classification": margin > calibration.threshold,
                    "raw_answer": completion.text,
                    "margin": round(margin, 6),
                    "threshold": round(calibration.threshold, 6),
                }])
            else:
                ctx.run.classifications.append([{
                    "id": record["id"],
                    "instruction": record["instruction"],
                    "is_classification": paper_rule(completion.text),
                    "raw_answer": completion.text,
                }])
            bar.advance()
    labels = ctx.run.classifications.open()
    return ClassifyResult(
        classified=len(labels),
        classification=sum(1 for r in labels if r["is_classification"]),
        failed=failed,
    )


def calibrate_on_seeds(ctx: RunContext) -> Calibration | None:
    """Score the held-out seed tasks, fit the threshold, record it in the manifest.
    None (and a note in the manifest) when the backend gives no log-probabilities."""
    tasks = held_out_tasks(ctx.seeds, ctx.templates)
    labels = [bool(t.is_classification) for t in tasks]
    if len(tasks) < 10 or not any(labels) or all(labels):
        raise UserError(
            f"--classifier calibrated needs at least 10 labelled seed tasks of both kinds "
            f"that the classification prompt does not show; the seeds have {len(tasks)} "
            f"({sum(labels)} classification)")
    requests = [scoring_request(ctx.templates, t.instruction) for t in tasks]
    margins: list[float | None] = [None] * len(tasks)
    with ctx.reporter.stage("calibrate", len(tasks)) as bar:
        for offset, completion in run_requests(
            ctx.backend, requests, cache=ctx.cache, max_concurrency=ctx.config.max_concurrency,
            stats=ctx.usage("calibrate"), budget=ctx.budget,
        ):
            if not completion.ok:
                raise UserError(f"classification calibration: a seed task could not be scored "
                                f"({completion.error}); re-run to retry")
            margins[offset] = margin_of(completion)
            bar.advance()
    if any(m is None for m in margins):
        ctx.manifest["classification_calibration"] = {
            "rule": "paper",
            "note": "the backend returns no log-probabilities; the paper rule was used",
        }
        ctx.save_manifest()
        return None
    calibration = calibrate([m for m in margins if m is not None], labels)
    ctx.manifest["classification_calibration"] = {"rule": "calibrated",
                                                  **calibration.as_dict()}
    ctx.save_manifest()
    return calibration
