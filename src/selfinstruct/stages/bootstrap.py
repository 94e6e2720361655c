"""Stage 1: bootstrap new instructions from the seed pool.

Each request shows the model 8 instructions (``num_machine_instructions`` sampled from
the machine pool while it has that many, the rest from the seeds), shuffled, numbered
``1.``..``8.``, and asks for ``9.``. Requests go out in batches of
``request_batch_size``; every prompt of a batch is built from the pool as it stood when
the batch started. Completions are split into candidates and each candidate passes, in
order, the rule filters of :mod:`selfinstruct.rules.filters` and the ROUGE-L novelty test
against the seeds and everything kept before it (:mod:`selfinstruct.novelty.index`). A
completion that hit ``max_tokens`` is rejected whole under the paper recipe (as the
original code does), and loses only its unfinished last candidate under the refined one
(:func:`selfinstruct.rules.parsing.candidate_decisions`).

With ``--decontaminate``, a candidate that passes the rules and is too close to an
evaluation instruction is rejected as ``contaminated`` before the novelty test
(:func:`selfinstruct.rules.decontamination.contaminated_instruction`).

Resume by replay: the stage is a pure function of the configuration, the seed and the
model's answers, and every answer is in the response cache. Re-running it rebuilds the
same pool in the same order from the cache; records already in the logs (matched by id)
are not written twice, and generation continues where the crash stopped it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from selfinstruct.backends.base import Completion, Request
from selfinstruct.errors import UserError
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.prompts import PromptTemplates, bootstrap_prompt
from selfinstruct.records import Instruction, Reject
from selfinstruct.rules.decontamination import contaminated_instruction
from selfinstruct.rules.parsing import TRUNCATED, candidate_decisions
from selfinstruct.run.config import RunConfig
from selfinstruct.run.randomness import derived_rng, derived_seed
from selfinstruct.stages.context import BootstrapContext

STAGE = "bootstrap"
TRUNCATED_WHOLE = ("the completion hit max_tokens: the paper recipe drops such a completion "
                   "whole, as the original code does")


class _Settings(Protocol):
    """What the prompt builder and the filter read: a RunContext, or preview's view of one."""

    @property
    def config(self) -> RunConfig: ...
    @property
    def templates(self) -> PromptTemplates: ...


class _Records(Protocol):
    """Where the filter's decisions go: :class:`_Writer`, or preview's in-memory one."""

    def kept(self, record: Instruction) -> None: ...
    def rejected(self, record: Reject) -> None: ...
    def failed(self, request_id: str, reason: str) -> None: ...


@dataclass
class BootstrapResult:
    kept: int
    rejected: int
    requests: int
    reached_target: bool


def _prompt_for(ctx: _Settings, request_index: int, seed_pool: list[str],
                machine: list[str]) -> str:
    c = ctx.config
    rng = derived_rng(c.seed, STAGE, request_index)
    chosen = rng.sample(machine, min(c.num_machine_instructions, len(machine)))
    chosen += rng.sample(seed_pool, min(len(seed_pool), c.num_prompt_instructions - len(chosen)))
    rng.shuffle(chosen)
    return bootstrap_prompt(ctx.templates, chosen, classification=c.classification_only)


class _Writer:
    """Writes records not already on disk, and checks that replayed ones match."""

    def __init__(self, ctx: BootstrapContext):
        self.ctx = ctx
        self.kept_on_disk = {r["id"]: r for r in ctx.run.instructions.recover()}
        self.rejects_on_disk = {r["id"] for r in ctx.run.rejects.recover()}
        self.failures_on_disk = {r["id"] for r in ctx.run.failures.recover()}

    def kept(self, record: Instruction) -> None:
        previous = self.kept_on_disk.get(record.id)
        if previous is None:
            self.ctx.run.instructions.append([record.to_json()])
        elif previous["instruction"] != record.instruction:
            raise UserError(
                f"{self.ctx.run.instructions.path}: record {record.id} differs from its replay "
                "(the seed tasks or the prompt templates changed since it was written, or "
                "the model answered differently and the cache was lost); restore them, or "
                "start over with --force-new"
            )

    def rejected(self, record: Reject) -> None:
        if record.id not in self.rejects_on_disk:
            self.ctx.run.rejects.append([record.to_json()])
            self.rejects_on_disk.add(record.id)

    def failed(self, request_id: str, reason: str) -> None:
        if request_id not in self.failures_on_disk:
            self.ctx.record_failure(request_id, STAGE, reason)
            self.failures_on_disk.add(request_id)


def bootstrap(ctx: BootstrapContext) -> BootstrapResult:
    c = ctx.config
    seed_tasks = [t for t in ctx.seeds if t.is_classification] if c.classification_only \
        else list(ctx.seeds)
    seed_pool = [t.instruction for t in seed_tasks]
    index = NoveltyIndex(use_stemmer=False)
    for text in seed_pool:
        index.add(text)
    machine: list[str] = []
    writer = _Writer(ctx)
    kept = rejected = 0
    request_index = 0
    with ctx.reporter.stage("generate", c.num_instructions) as bar:
        while len(machine) < c.num_instructions and request_index < c.request_budget:
            size = min(c.request_batch_size, c.request_budget - request_index)
            indices = list(range(request_index, request_index + size))
            requests = [
                Request(_prompt_for(ctx, i, seed_pool, machine),
                        c.bootstrap_sampling(derived_seed(c.seed, STAGE, i)), chat=c.chat)
                for i in indices
            ]
            for offset, completion in ctx.ask(STAGE, requests):
                i = indices[offset]
                if len(machine) >= c.num_instructions:
                    break
                k, r = _accept(ctx, i, requests[offset], completion, index, machine, writer)
                kept += k
                rejected += r
                bar.advance(k)
                bar.note(f"requests {i + 1}, rejected {rejected}, {ctx.budget.describe()}")
                if len(machine) >= c.num_instructions:
                    break  # before the next completion is asked for (the request loop is lazy)
            request_index += size
    return BootstrapResult(kept=len(machine), rejected=rejected, requests=request_index,
                           reached_target=len(machine) >= c.num_instructions)


def _accept(ctx: _Settings, i: int, request: Request, completion: Completion,
            index: NoveltyIndex, machine: list[str], writer: _Records) -> tuple[int, int]:
    """Filter one completion's candidates in order; returns (kept, rejected) counts."""
    c = ctx.config
    if not completion.ok:
        writer.failed(f"request-{i:06d}", completion.error or "unknown error")
        return 0, 0
    whole = c.recipe_settings.drop_truncated_completion
    decisions = candidate_decisions(completion.text, completion.finish_reason, whole)
    kept = rejected = 0
    for position, (text, reason) in enumerate(decisions):
        if len(machine) >= c.num_instructions:
            break
        record_id = f"{i:06d}.{position:02d}"
        detail = ""
        if reason == TRUNCATED:
            detail = (TRUNCATED_WHOLE if whole else
                      "the completion hit max_tokens: its last candidate is unfinished")
        if reason is None and c.decontamination_files:
            hit = contaminated_instruction(c.decontamination_files, text, c.similarity_threshold)
            if hit is not None:
                reason, detail = hit
        if reason is None and index.max_similarity(text) > c.similarity_threshold:
            nearest, score = index.most_similar(text, 1)[0]
            reason, detail = "too_similar", f"ROUGE-L {score:.4f} with: {nearest}"
        if reason is not None:
            writer.rejected(Reject(record_id, STAGE, reason, text, detail))
            rejected += 1
            continue
        top, mean = index.similarity_stats(text, 10)
        index.add(text)
        machine.append(text)
        writer.kept(Instruction(
            id=record_id, instruction=text, request_index=i, position=position,
            most_similar=[(t, round(s, 6)) for t, s in top], avg_similarity=round(mean, 6),
            raw_completion=completion.text, prompt=request.prompt,
        ))
        kept += 1
    return kept, rejected
