"""Which recorded failures are still open after a resume answered some of them."""

from selfinstruct.run.pipeline import unresolved_failures
from selfinstruct.run.rundir import RunDir


def test_failures_answered_later_are_not_counted(tmp_path):
    run = RunDir(tmp_path)
    run.failures.append([
        {"id": "request-000003", "stage": "bootstrap", "reason": "HTTP 503"},
        {"id": "request-000004", "stage": "bootstrap", "reason": "HTTP 503"},
        {"id": "000001.00", "stage": "classify", "reason": "timeout"},
        {"id": "000001.01", "stage": "instances", "reason": "timeout"},
    ])
    run.instructions.append([{"id": "000003.00"}, {"id": "000001.00"}, {"id": "000001.01"}])
    run.classifications.append([{"id": "000001.00"}])
    open_ = unresolved_failures(run)
    assert [(f["stage"], f["id"]) for f in open_] == [("bootstrap", "request-000004"),
                                                      ("instances", "000001.01")]


def test_summary_carries_the_quality_measures_and_prints_them(tmp_path):
    import json

    from rich.console import Console

    from selfinstruct.cli.render import summary_table
    from selfinstruct.prompts import PromptTemplates
    from selfinstruct.run.config import RunConfig
    from selfinstruct.run.context import RunContext
    from selfinstruct.run.pipeline import summarize

    run = RunDir(tmp_path)
    run.create()
    run.instructions.append([{"id": "a"}, {"id": "b"}])
    run.classifications.append([
        {"id": "a", "is_classification": True, "margin": 2.0, "threshold": 0.5},
        {"id": "b", "is_classification": False, "margin": -1.0, "threshold": 0.5}])
    tasks = [
        {"id": "a", "instruction": "Is the review positive or negative?",
         "is_classification": True, "instances": [{"input": "Loved it", "output": "Positive"},
                                                  {"input": "Hated it", "output": "Positive"}]},
        {"id": "b", "instruction": "Write a poem.", "is_classification": False,
         "instances": [{"input": "", "output": "Roses are red."}]},
    ]
    run.tasks_path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    ctx = RunContext(run=run, config=RunConfig(), seeds=[], templates=PromptTemplates.load())
    summary = summarize(ctx)
    q = summary.quality
    assert (q.classification_rate, q.echo_rate, q.label_diversity) == (0.5, 2 / 3, {"a": 0.5})
    assert (q.margins.n, q.margins.threshold, q.margins.above) == (2, 0.5, 1)
    console = Console(width=120, record=True)
    console.print(summary_table(summary, "runs/x"))
    text = console.export_text()
    for row in ("classification rate", "50.0%", "echo rate", "66.7%",
                "label diversity (mean over 1 classification tasks)", "0.50",
                "above the threshold", "1 (0.50)"):
        assert row in text, row
