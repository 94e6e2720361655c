"""Stage 2: ask the model whether each kept instruction is a classification task.

The few-shot Yes/No prompt with greedy decoding, 3 tokens, stop at a newline or
``Task``. As in the original, only an answer of exactly ``Yes`` (any case of the three
``Yes``/``yes``/``YES``, surrounding space ignored) counts as classification.

Resume: instructions already in ``classifications.jsonl`` are skipped; a request that
failed for good goes to ``failures.jsonl`` and is tried again on the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfinstruct.backends.base import Request
from selfinstruct.context import RunContext
from selfinstruct.executor import run_requests
from selfinstruct.prompts import classification_prompt

STAGE = "classify"
YES = {"Yes", "yes", "YES"}


@dataclass
class ClassifyResult:
    classified: int
    classification: int
    failed: int


def classify(ctx: RunContext) -> ClassifyResult:
    instructions = ctx.run.instructions.open()
    done = {r["id"] for r in ctx.run.classifications.open()}
    todo = [r for r in instructions if r["id"] not in done]
    prefix = ctx.templates.classification
    requests = [
        Request(classification_prompt(ctx.templates, r["instruction"]),
                ctx.config.classification_sampling(), prefix=prefix, chat=ctx.config.chat)
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
            ctx.run.classifications.append([{
                "id": record["id"],
                "instruction": record["instruction"],
                "is_classification": completion.text.strip() in YES,
                "raw_answer": completion.text,
            }])
            bar.advance()
    labels = ctx.run.classifications.open()
    return ClassifyResult(
        classified=len(labels),
        classification=sum(1 for r in labels if r["is_classification"]),
        failed=failed,
    )
