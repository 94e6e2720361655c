"""``RUN/report/index.html``: one self-contained page that shows what a run made.

:func:`write_report` reads the run directory (read-only, :mod:`.run_records`), computes
the funnel, the verb-noun pairs, the ROUGE-L with the nearest seed, the word counts, the
quality measures of :mod:`selfinstruct.rules.quality` and a seeded sample, draws the figures (:mod:`.figures`) into ``RUN/report/*.png``, and renders
``report.html`` (Jinja2, autoescaped: every generated text is escaped) with the PNGs
embedded as base64, so the page opens offline, from anywhere, with no other file. The page
has no script. When the run has been reviewed (``RUN/review.sqlite``), the reviewer's
quality audit (the paper's Table 2) is shown too.

What it leaves out: serving the page, and anything that needs a model: the report only
reads what the run wrote.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct import __version__
from selfinstruct.analysis import require_analysis
from selfinstruct.analysis.funnel import Funnel
from selfinstruct.analysis.stats import (
    Lengths,
    length_samples,
    sample_tasks,
    seed_pool,
    seed_similarities,
)
from selfinstruct.analysis.verbs import VerbNode, extract_pairs, load_nlp, top_verb_nouns
from selfinstruct.errors import UserError
from selfinstruct.files import (
    _reason,
    atomic_write_text,
    check_output_folder,
    mark_output_folder,
    now,
)
from selfinstruct.rules.quality import QualityMeasures, measure
from selfinstruct.run.records_reader import RunRecords

REPORT_DIR = "report"
SAMPLE_SIZE = 20
USAGE_FIELDS = ("requests", "cached", "failed", "retries", "prompt_tokens",
                "completion_tokens", "generation_seconds")


@dataclass
class ReportData:
    run: RunRecords
    funnel: Funnel
    verb_nodes: list[VerbNode]
    with_pair: int
    seed_scores: list[float]
    seed_note: str | None
    lengths: Lengths
    sample: list[dict]
    sample_seed: int
    quality: object | None = None
    measures: QualityMeasures | None = None  # selfinstruct.rules.quality
    figures: dict[str, str] = field(default_factory=dict)  # name -> base64 PNG


def _seed_scores(run: RunRecords, texts: list[str]) -> tuple[list[float], str | None]:
    from selfinstruct.seeds import load_seeds

    config = run.manifest.get("config", {})
    try:
        seeds = load_seeds(config.get("seeds"))
    except UserError as exc:
        return [], f"the run's seed file could not be read, so this figure is left out ({exc})"
    return seed_similarities(texts, seed_pool(seeds, config)), None


def collect(run: RunRecords, *, nlp=None, sample_size: int = SAMPLE_SIZE,
            sample_seed: int | None = None) -> ReportData:
    """Every number the report shows; ``nlp`` is a loaded spaCy pipeline (loaded if None)."""
    from selfinstruct.progress import ambient

    texts = [r["instruction"] for r in run.instructions]
    if nlp is None:
        with ambient().stage("report: load spaCy", None):
            nlp = load_nlp()
    with ambient().stage("report: parse", len(texts)) as bar:
        pairs = extract_pairs(texts, nlp, on_each=bar.advance)
    scores, note = _seed_scores(run, texts)
    seed = run.manifest.get("seed", 0) if sample_seed is None else sample_seed
    quality = None
    if (run.path / "review.sqlite").exists():
        from selfinstruct.review.store import ReviewStore, quality_summary

        quality = quality_summary(ReviewStore(run.path).reviews().values())
    return ReportData(
        run=run, funnel=run.funnel(), verb_nodes=top_verb_nouns(pairs),
        with_pair=sum(p is not None for p in pairs), seed_scores=scores, seed_note=note,
        lengths=length_samples(run.tasks), sample=sample_tasks(run.tasks, sample_size, seed),
        sample_seed=seed, quality=quality,
        measures=measure(run.classifications, run.tasks),
    )


def draw(data: ReportData, folder: Path) -> dict[str, Path]:
    from selfinstruct.analysis import figures

    folder.mkdir(parents=True, exist_ok=True)
    f = data.funnel
    threshold = data.run.manifest.get("config", {}).get("similarity_threshold", 0.7)
    paths = {
        "funnel": figures.funnel_figure(f, folder / "funnel.png"),
        "sunburst": figures.sunburst_figure(
            data.verb_nodes, folder / "sunburst.png",
            f"Top root verbs and their direct-object nouns ({data.with_pair} of "
            f"{f.kept} instructions have both)"),
        "rouge_seed": figures.rouge_seed_figure(data.seed_scores, threshold,
                                                folder / "rouge_seed.png"),
        "lengths": figures.lengths_figure(data.lengths.instructions, data.lengths.inputs,
                                          data.lengths.outputs, folder / "lengths.png"),
        "classification": figures.classification_figure([
            ("kept instructions", f.classification, f.non_classification),
            ("final tasks", f.final_classification, f.final_tasks - f.final_classification),
        ], folder / "classification.png"),
    }
    margins = data.measures.margins if data.measures else None
    if margins is not None:
        paths["margins"] = figures.margin_figure(list(margins.margins), list(margins.edges),
                                                 margins.threshold, folder / "margins.png")
    data.figures = {name: base64.b64encode(p.read_bytes()).decode("ascii")
                    for name, p in paths.items()}
    return paths


def _usage_rows(manifest: dict) -> list[dict]:
    usage = manifest.get("usage", {})
    rows = [{"stage": stage, **{k: stats.get(k, 0) for k in USAGE_FIELDS}}
            for stage, stats in usage.items()]
    if rows:
        rows.append({"stage": "total", **{k: round(sum(r[k] for r in rows), 3)
                                          for k in USAGE_FIELDS}})
    return rows


def _least_diverse(data: ReportData, k: int = 10) -> list[tuple[str, str, float]]:
    """(id, instruction, label diversity) of the ``k`` classification tasks with the
    fewest distinct labels per instance, lowest first (ties in task order)."""
    if data.measures is None:
        return []
    instructions = {t["id"]: t["instruction"] for t in data.run.tasks}
    ranked = sorted(data.measures.label_diversity.items(), key=lambda item: item[1])
    return [(tid, instructions.get(tid, ""), value) for tid, value in ranked[:k]]


def render(data: ReportData) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("selfinstruct.analysis", "templates"),
                      autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    manifest = data.run.manifest
    scores = sorted(data.seed_scores)
    return env.get_template("report.html").render(
        d=data, f=data.funnel, manifest=manifest, config=manifest.get("config", {}),
        model=manifest.get("model", {}), usage=_usage_rows(manifest),
        median_seed=scores[len(scores) // 2] if scores else None,
        above_half=sum(s > 0.5 for s in scores),
        least_diverse=_least_diverse(data),
        generated_at=now(),
        version=__version__,
    )


def write_report(run_dir: str | Path, *, nlp=None, sample_size: int = SAMPLE_SIZE,
                 sample_seed: int | None = None) -> Path:
    """Write ``RUN/report/index.html`` and its PNGs; returns the HTML file's path."""
    require_analysis()
    run = RunRecords.load(run_dir)
    from selfinstruct.progress import ambient

    folder = run.path / REPORT_DIR
    check_output_folder(folder, "report", legacy=_report_before_markers)
    data = collect(run, nlp=nlp, sample_size=sample_size, sample_seed=sample_seed)
    mark_output_folder(folder, "report")
    try:
        with ambient().stage("report: figures", None):
            draw(data, folder)
    except OSError as exc:  # matplotlib writes the figures itself: name the folder
        where = exc.filename or folder
        raise UserError(f"{where}: cannot write the report ({_reason(exc)})") from None
    target = folder / "index.html"
    atomic_write_text(target, render(data))
    return target


def _report_before_markers(folder: Path) -> bool:
    """A report folder written before the output marker: index.html and PNGs only."""
    return all(entry.is_file() and (entry.name == "index.html" or entry.suffix == ".png"
                                    or entry.name.startswith(".index.html."))
               for entry in folder.iterdir())
