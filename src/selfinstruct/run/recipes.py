"""Named recipes: which decisions a run makes where the paper leaves room or falls short.

A recipe is a bundle of choices, read by the stages through ``RunConfig.recipe_settings``.

- ``paper`` reproduces the original Self-Instruct code decision for decision: the greedy
  Yes/No classification rule, a bootstrap completion that hit ``max_tokens`` dropped
  whole, a random 5 instances per task, no filter beyond the paper's, the
  prompt/completion export's input rewriting of ``prepare_for_finetuning.py`` (a lone
  field name dropped half of the time). Its files are byte-identical to what that code
  decides (tested against the original code's recorded decisions).
- ``refined`` keeps the paper's loop and fixes what makes a small model's data wrong:
  a calibrated classification rule (the log-probability margin of Yes over No, with a
  threshold fitted on labelled seed tasks), only the truncated last candidate of a
  bootstrap completion dropped, instances that copy a demonstration of their own prompt
  dropped, and instructions too close to an evaluation set dropped (decontamination).
  Its prompt/completion export removes a field name from an input only where the input
  starts with it (the original's colon rule also cuts content: "# TODO: ..." in code).
  Instances may be written by a different adapter of the same model (``--answer-lora``,
  e.g. one fine-tuned on the seed tasks: "round 0").
- ``curated`` is ``refined`` plus curation by signals the model computes about itself
  (``stages/answers.py``, ``rules/consensus.py``): each kept instance is answered again
  ``--answers`` times and the output is the candidates' ROUGE-L medoid, dropped below an
  agreement threshold fitted on the seed tasks (``no_consensus``); a classification
  instance whose label the model does not pick back from its own input is dropped
  (``label_not_recovered``); a pair whose instruction does not make its output likelier
  (IFD >= 1) is dropped (``instruction_does_not_help``).
"""

from __future__ import annotations

from dataclasses import dataclass

CLASSIFIERS = ("paper", "calibrated")


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    classifier: str  # "paper": greedy Yes/No; "calibrated": Yes-No margin above a fitted threshold
    drop_truncated_completion: bool  # True: a bootstrap completion that hit max_tokens yields nothing
    filter_demonstration_leaks: bool  # drop instances that copy their prompt's demonstrations
    # prompt/completion export, half of the inputs: "paper" drops the text up to the first
    # colon when the input has one distinct "word:"; "leading" only when the input starts
    # with that "word:" and a space (a field name), so content is never cut
    field_name_rule: str
    # the answers stage and the curation filters: consensus over sampled answers, round-trip
    # labels, the instruction-following-difficulty mismatch filter (``stages/answers.py``)
    curate: bool = False


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(
        name="paper",
        summary="the original Self-Instruct code, decision for decision",
        classifier="paper",
        drop_truncated_completion=True,
        filter_demonstration_leaks=False,
        field_name_rule="paper",
    ),
    "refined": Recipe(
        name="refined",
        summary=("calibrated classification, demonstration-leak and decontamination filters, "
                 "an optional answering adapter"),
        classifier="calibrated",
        drop_truncated_completion=False,
        filter_demonstration_leaks=True,
        field_name_rule="leading",
    ),
    "curated": Recipe(
        name="curated",
        summary=("refined, and only what the model gets right: answers sampled again and "
                 "chosen by consensus, classification labels recovered by a round trip, "
                 "pairs the instruction does not help to answer dropped"),
        classifier="calibrated",
        drop_truncated_completion=False,
        filter_demonstration_leaks=True,
        field_name_rule="leading",
        curate=True,
    ),
}
DEFAULT_RECIPE = "refined"  # why: README, "Which recipe is the default"
