"""Stage 3: write instances for each classified instruction.

Classification tasks get the output-first template (a class label, then an input for
it), so that the labels are not all the same; the others get the input-first template.
Greedy decoding, presence penalty 1.5, 300 or 350 tokens, stop at ``Example 6`` and
``Task:``. The parsed instances are stored as they came, with what the parser dropped
(a truncated last instance); the paper's quality filters run in ``postprocess``.
With ``--answer-lora`` the instances are written by that adapter of the same model (say,
its fine-tune on the seed tasks), not by the bare model that wrote the instructions.

Resume: instructions already in ``instances.jsonl`` are skipped. The file's order may
differ between runs (classification tasks go first); ``postprocess`` orders by id.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from selfinstruct.backends.base import Request
from selfinstruct.backends.requests import batches
from selfinstruct.prompts import instance_prompt
from selfinstruct.rules.parsing import parse_classification_instances, parse_generation_instances
from selfinstruct.stages.context import InstancesContext

STAGE = "instances"


@dataclass
class InstancesResult:
    tasks: int
    instances: int
    failed: int


def generate_instances(ctx: InstancesContext) -> InstancesResult:
    labelled = ctx.run.classifications.recover()
    done = {r["id"] for r in ctx.run.instances.recover()}
    # Classification tasks first, then the others: requests that share a template run
    # together, so the embedded backend evaluates each template once. A batched model is
    # asked for every task, done or not (the cache answers the done ones), so that its
    # groups, and so its text, are the same on a resumed run.
    answerer = ctx.answer_backend
    ordered = sorted((r for r in labelled if batches(answerer) or r["id"] not in done),
                     key=lambda r: not r["is_classification"])
    requests = []
    for record in ordered:
        clf = record["is_classification"]
        template = (ctx.templates.instance_output_first if clf
                    else ctx.templates.instance_input_first)
        requests.append(Request(instance_prompt(ctx.templates, record["instruction"], clf),
                                ctx.config.instance_sampling(clf), prefix=template,
                                chat=ctx.config.chat))
    failed = 0
    with ctx.reporter.stage("instances", len(labelled)) as bar:
        bar.advance(len(done))
        for offset, completion in ctx.ask(STAGE, requests, answerer):
            record = ordered[offset]
            if record["id"] in done:
                continue
            if not completion.ok:
                ctx.record_failure(record["id"], STAGE, completion.error)
                failed += 1
                continue
            truncated = completion.finish_reason == "length"
            parse = (parse_classification_instances if record["is_classification"]
                     else parse_generation_instances)
            parsed = parse(completion.text, truncated)
            ctx.run.instances.append([{
                "id": record["id"],
                "instruction": record["instruction"],
                "is_classification": record["is_classification"],
                "instances": [asdict(i) for i in parsed.instances],
                "dropped": [{"instance": asdict(i) if i else None, "reason": reason}
                            for i, reason in parsed.dropped],
                "finish_reason": completion.finish_reason,
                "raw_completion": completion.text,
            }])
            bar.advance()
    records = ctx.run.instances.recover()
    return InstancesResult(tasks=len(records),
                           instances=sum(len(r["instances"]) for r in records), failed=failed)
