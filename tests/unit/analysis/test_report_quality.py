"""The report's data-quality section and its margin histogram (no spaCy needed)."""

from __future__ import annotations

import base64
import json

from handmade_run import make_run

from selfinstruct.analysis import figures
from selfinstruct.analysis.report import ReportData, render
from selfinstruct.analysis.stats import length_samples
from selfinstruct.rules.quality import measure
from selfinstruct.run.records_reader import RunRecords

FIGURES = ("funnel", "sunburst", "rouge_seed", "lengths", "classification")


def _data(run_dir, figures_drawn) -> ReportData:
    run = RunRecords.load(run_dir)
    return ReportData(run=run, funnel=run.funnel(), verb_nodes=[], with_pair=0,
                      seed_scores=[], seed_note=None, lengths=length_samples(run.tasks),
                      sample=[], sample_seed=0,
                      measures=measure(run.classifications, run.tasks),
                      figures=figures_drawn)


def test_the_page_shows_the_measures_and_the_margin_histogram(tmp_path):
    run_dir = make_run(tmp_path / "run")
    path = run_dir / "classifications.jsonl"
    labelled = [json.loads(line) for line in path.read_text().splitlines()]
    for k, record in enumerate(labelled):
        record.update(margin=[3.0, -1.0, -2.5, 0.2, -0.4, 1.0][k], threshold=0.5)
    path.write_text("".join(json.dumps(r) + "\n" for r in labelled))
    data = _data(run_dir, {name: "" for name in FIGURES})
    margins = data.measures.margins
    assert (margins.n, margins.threshold, margins.above) == (6, 0.5, 2)
    png = figures.margin_figure(list(margins.margins), list(margins.edges), margins.threshold,
                                tmp_path / "margins.png")
    assert png.read_bytes().startswith(b"\x89PNG")
    data.figures["margins"] = base64.b64encode(png.read_bytes()).decode()
    html = render(data)
    assert 'href="#data-quality"' in html and "Data quality" in html
    assert data.figures["margins"] in html
    assert "2 are above the threshold 0.50" in html
    # the factory run: 1 classification task of 6 labelled; "positive"/"negative" 2 of 2
    assert "16.7%" in html and "1.00" in html
    assert "Classify the sentiment of the given review." in html  # least diverse tasks


def test_without_margins_there_is_no_histogram(tmp_path):
    data = _data(make_run(tmp_path / "run"), {name: "" for name in FIGURES})
    assert data.measures.margins is None
    html = render(data)
    assert "Data quality" in html and "Classification margins" not in html
