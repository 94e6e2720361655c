"""Stage 3b (the curated recipe): answer each kept instance again, and score what to keep.

For each instance that the paper's filters keep (:func:`selfinstruct.stages.postprocess.
select_tasks`), the answerer (the model, or its ``--answer-lora`` adapter) is asked:

1. **candidates** (tasks that are not classification): ``--answers`` K outputs for the
   instance's instruction and input, sampled at ``--answer-temperature``, candidate ``j``
   in the ``j``-th fine-tuning format behind its own seed demonstrations
   (:mod:`selfinstruct.prompts.answering`). With the instance's own output first, the
   candidates' ROUGE-L medoid is chosen and its agreement recorded
   (:func:`selfinstruct.rules.consensus.medoid`);
2. **round-trip labels** (classification tasks with two labels or more): the
   log-probability of every label the task's instances use, after the instruction and
   the instance's input;
3. **instruction-following difficulty**: the chosen output's log-probability after its
   prompt and alone; IFD is the ratio of the two mean losses.

Steps 2 and 3 need log-probabilities of whole texts (``scores_whole_texts``: the embedded
and the transformers backends, and a server that echoes a prompt with its log-probabilities,
such as vLLM, which the OpenAI-compatible backend asks once; their requests set
``Request.whole``); elsewhere both are skipped and the manifest (``curation``) says so. The agreement threshold is ``--min-agreement``,
or fitted first on seed tasks answered the same way (K+1 candidates, the extra one
standing for the instance stage's own output), whose outputs are known; the fit and its
leave-one-out precision go into the manifest. Those seed answers are cached in the cache
that runs of the model share.

This stage only records; ``postprocess`` decides (:mod:`selfinstruct.rules.curation`).
Resume: tasks already in ``answers.jsonl`` are skipped (a batched model is asked them
again, from the cache, so that its groups are the same).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from selfinstruct.backends.base import Completion, Request
from selfinstruct.backends.requests import batches
from selfinstruct.prompts.answering import (
    Demonstrations,
    answer_completion,
    answer_prompt,
    clean_answer,
    demonstrations,
)
from selfinstruct.records import Task
from selfinstruct.rules.consensus import fit_agreement, ifd, is_correct, medoid
from selfinstruct.run.randomness import derived_rng, derived_seed
from selfinstruct.stages.context import AnswersContext
from selfinstruct.stages.postprocess import select_tasks

STAGE = "answers"
IFD_CAP = 1e6  # an infinite IFD (an output predictable with no prompt) is stored as this
NO_WHOLE_TEXT_SCORES = ("round-trip labels and IFD skipped: the answerer does not score whole "
                        "texts (a server that does not echo a prompt's log-probabilities "
                        "scores only the first token)")


@dataclass
class AnswersResult:
    tasks: int
    instances: int
    failed: int
    threshold: float | None


def answer(ctx: AnswersContext) -> AnswersResult:
    """The stage: nothing unless the recipe curates (see the module docstring)."""
    if not ctx.config.recipe_settings.curate:
        return AnswersResult(0, 0, 0, None)
    tasks, _ = select_tasks(ctx)
    done = {r["id"] for r in ctx.run.answers.recover()}
    todo = [t for t in tasks if t.id not in done]
    if not todo:
        return AnswersResult(len(done), 0, 0, None)
    answerer = ctx.answer_backend
    asked = tasks if batches(answerer) else todo
    demos = answer_demonstrations(ctx)
    curation: dict = {"answers": ctx.config.answers,
                      "demonstrations": [list(d.task_ids) for d in demos]}
    threshold = ctx.config.min_agreement
    if threshold is None:
        fit = fit_on_seeds(ctx, demos)
        threshold = fit.get("threshold")
        curation["agreement"] = fit
    else:
        curation["agreement"] = {"threshold": threshold, "source": "--min-agreement"}
    items = [(task, k, instance) for task in asked for k, instance in enumerate(task.instances)]
    total = len(items)
    failed: set[str] = set()
    with ctx.reporter.stage("answers", total) as bar:
        candidates = _candidates(ctx, items, demos, failed, bar)
        chosen = {key: medoid(texts) for key, texts in candidates.items()}
        # a server backend asks its server here, once (one small echo request)
        if getattr(answerer, "scores_whole_texts", False):
            scores, skipped = _scores(ctx, items, candidates, chosen, demos[0], failed)
        else:
            scores, skipped = {}, [NO_WHOLE_TEXT_SCORES]
    if skipped:
        curation["skipped"] = skipped
    ctx.record_curation(curation)
    written = 0
    for task in asked:
        if task.id in done or task.id in failed:
            continue
        entries = []
        for k, instance in enumerate(task.instances):
            key = (task.id, k)
            entry: dict = {"input": instance.input, "output": instance.output}
            if key in candidates:
                entry.update(candidates=candidates[key], chosen=chosen[key].index,
                             agreement=round(chosen[key].agreement, 4))
            entry.update(scores.get(key, {}))
            entries.append(entry)
        ctx.run.answers.append([{"id": task.id, "instruction": task.instruction,
                                 "is_classification": bool(task.is_classification),
                                 "threshold": threshold, "scored": not skipped,
                                 "instances": entries}])
        written += len(entries)
    return AnswersResult(len(done) + sum(1 for t in asked if t.id not in done
                                         and t.id not in failed),
                         written, len(failed), threshold)


def answer_demonstrations(ctx: AnswersContext) -> list[Demonstrations]:
    """The demonstrations of candidates 0..K (K+1 sets: the seed fit uses one more). They
    do not depend on the run seed, so that every run of a model asks the seed tasks the
    same requests and the fit is paid once (the shared cache)."""
    return [demonstrations(ctx.templates, ctx.seeds, ctx.config.answer_shots,
                           derived_rng(0, "answer-demonstrations", j), j)
            for j in range(ctx.config.answers + 1)]


def _candidate_request(ctx: AnswersContext, demo: Demonstrations, instruction: str,
                       input_text: str, seed: int) -> Request:
    prompt = demo.text + answer_prompt(ctx.templates, instruction, input_text, demo.j)
    return Request(prompt, ctx.config.answer_sampling(seed), prefix=demo.text or None,
                   chat=ctx.config.chat)


def _candidates(ctx: AnswersContext, items, demos, failed: set[str],
                bar) -> dict[tuple[str, int], list[str]]:
    """K sampled answers for every instance of a non-classification task, candidate-major
    (each candidate's demonstrations are a prefix the embedded model evaluates once); the
    instance's own output comes first."""
    wanted = [(task, k, instance) for task, k, instance in items if not task.is_classification]
    k_answers = ctx.config.answers
    requests = [_candidate_request(ctx, demos[j], task.instruction, instance.input,
                                   derived_seed(ctx.config.seed, "answer", task.id, k, j))
                for j in range(k_answers) for task, k, instance in wanted]
    texts: dict[tuple[str, int], list[str]] = {
        (task.id, k): [instance.output] + [""] * k_answers for task, k, instance in wanted}
    for offset, completion in ctx.ask(STAGE, requests, ctx.answer_backend):
        j, i = divmod(offset, len(wanted))
        task, k, _ = wanted[i]
        if not completion.ok:
            _fail(ctx, failed, task.id, completion)
            continue
        texts[(task.id, k)][j + 1] = clean_answer(completion.text)
        if j == k_answers - 1:
            bar.advance()
    bar.advance(len(items) - len(wanted))
    return texts


def _fail(ctx: AnswersContext, failed: set[str], task_id: str, completion: Completion) -> None:
    if task_id not in failed:
        failed.add(task_id)
        ctx.record_failure(task_id, STAGE, completion.error)


def _scores(ctx: AnswersContext, items, candidates, chosen, demo: Demonstrations,
            failed: set[str]) -> tuple[dict[tuple[str, int], dict], list[str]]:
    """Round-trip label scores and IFD of each instance's kept output. Returns the scores
    by instance and the steps skipped because the backend gives no log-probabilities."""
    requests: list[Request] = []
    owners: list[tuple[tuple[str, int], str]] = []
    for task, k, instance in items:
        key = (task.id, k)
        output = (candidates[key][chosen[key].index] if key in candidates else instance.output)
        if not output.strip():
            continue
        plain = answer_prompt(ctx.templates, task.instruction, instance.input, 0)
        choice = answer_completion(ctx.templates, instance.input, output, 0)
        requests.append(Request(plain, ctx.config.answer_sampling(0), choices=(choice,),
                                whole=True))
        owners.append((key, "with_prompt"))
        requests.append(Request("", ctx.config.answer_sampling(0), choices=(choice,),
                                whole=True))
        owners.append((key, "alone"))
        labels = _labels(task) if task.is_classification else []
        if len(labels) > 1:
            prompt = demo.text + plain
            choices = tuple(answer_completion(ctx.templates, instance.input, label, 0)
                            for label in labels)
            requests.append(Request(prompt, ctx.config.answer_sampling(0), prefix=demo.text or None,
                                    choices=choices, whole=True))
            owners.append((key, "labels"))
    raw: dict[tuple[str, int], dict] = {}
    skipped: set[str] = set()
    for offset, completion in ctx.ask(STAGE, requests, ctx.answer_backend):
        key, what = owners[offset]
        if not completion.ok:
            _fail(ctx, failed, key[0], completion)
            continue
        if completion.choice_logprobs is None:
            skipped.add(NO_WHOLE_TEXT_SCORES)
            continue
        raw.setdefault(key, {})[what] = completion.choice_logprobs
    out: dict[tuple[str, int], dict] = {}
    task_of = {(task.id, k): task for task, k, _ in items}
    for key, parts in raw.items():
        entry: dict = {}
        if "with_prompt" in parts and "alone" in parts:
            (with_prompt,) = parts["with_prompt"].values()
            (alone,) = parts["alone"].values()
            value = ifd(with_prompt, alone)
            entry.update(logprob_with_prompt=round(with_prompt, 4), logprob_alone=round(alone, 4),
                         ifd=round(min(value, IFD_CAP), 4) if not math.isnan(value) else None)
        if "labels" in parts:
            labels = _labels(task_of[key])
            entry["labels"] = {label: round(score, 4)
                               for label, score in zip(labels, parts["labels"].values())}
        out[key] = entry
    return out, sorted(skipped)


def _labels(task: Task) -> list[str]:
    """The distinct outputs of a classification task's instances, in first-seen order."""
    return list(dict.fromkeys(i.output for i in task.instances))


def fit_on_seeds(ctx: AnswersContext, demos: list[Demonstrations]) -> dict:
    """Answer seed tasks (K+1 candidates each, none shown as a demonstration), and fit the
    agreement threshold on whether each medoid matches the seed's own output. Without a
    threshold (no seed task to fit on, or a seed answer that could not be had: the
    preview reads only what the shared cache holds), a note says why and the consensus
    filter does not run."""
    shown = {t for d in demos for t in d.task_ids}
    tasks = ctx.seeds
    if ctx.config.agreement_fit_seeds:  # validated as --seeds files are
        from selfinstruct.errors import UserError
        from selfinstruct.seeds import load_seeds

        try:
            tasks = load_seeds(ctx.config.agreement_fit_seeds)
        except UserError as exc:
            raise UserError(str(exc).replace("--seeds:", "--agreement-fit-seeds:", 1)) from None
    pool = [t for t in tasks if t.instances and t.id not in shown
            and not t.is_classification]
    limit = ctx.config.agreement_fit_tasks
    if limit and len(pool) > limit:
        pool = derived_rng(0, "agreement-fit").sample(pool, limit)  # the same for every run
    if not pool:
        return {"threshold": None, "note": "no seed task to fit on; no consensus filter"}
    n = len(demos)
    requests = [_candidate_request(ctx, demos[j], task.instruction, task.instances[0].input,
                                   derived_seed(0, "agreement-fit", task.id, j))
                for j in range(n) for task in pool]
    texts: list[list[str]] = [[""] * n for _ in pool]
    with ctx.reporter.stage("fit agreement", len(requests)) as bar:
        for offset, completion in ctx.ask_shared("fit-agreement", requests, ctx.answer_backend):
            j, i = divmod(offset, len(pool))
            bar.advance()
            if not completion.ok:
                return {"threshold": None,
                        "note": f"a seed answer could not be had ({completion.error}); "
                                "no consensus filter"}
            texts[i][j] = clean_answer(completion.text)
    consensus = [medoid(t) for t in texts]
    agreements = [c.agreement for c in consensus]
    correct = [is_correct(t[c.index], task.instances[0].output)
               for t, c, task in zip(texts, consensus, pool)]
    fit = fit_agreement(agreements, correct, ctx.config.agreement_min_kept)
    source = (f"fitted on {ctx.config.agreement_fit_seeds}" if ctx.config.agreement_fit_seeds
              else "fitted on seed tasks")
    return {**fit.as_dict(), "source": source}
