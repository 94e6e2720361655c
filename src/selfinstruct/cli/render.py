"""Render results for people: the end-of-run summary table, with the quality measures."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selfinstruct.rules.quality import MarginHistogram, QualityMeasures
from selfinstruct.run.pipeline import Summary

_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(counts: tuple[int, ...] | list[int]) -> str:
    """One character per bin, its height proportional to the count (empty bins blank)."""
    top = max(counts, default=0)
    if not top:
        return ""
    return "".join(_BARS[0] if c == 0 else _BARS[max(1, round(8 * c / top))] for c in counts)


def _margin_rows(h: MarginHistogram) -> list[tuple[str, str]]:
    ordered = sorted(h.margins)
    median = ordered[len(ordered) // 2]
    rows = [("classification margin (Yes - No), median", f"{median:.2f} over {h.n}")]
    if h.threshold is not None:
        rows.append(("  above the threshold", f"{h.above} ({h.threshold:.2f})"))
    rows.append(("  histogram", f"{h.edges[0]:.1f} {sparkline(h.counts)} {h.edges[-1]:.1f}"))
    return rows


def quality_rows(q: QualityMeasures) -> list[tuple[str, str]]:
    """The summary's quality rows (what, value); measures with nothing to measure are left
    out."""
    rows = []
    if q.classification_rate is not None:
        rows.append(("classification rate", f"{q.classification_rate:.1%}"))
    if q.echo_rate is not None:
        rows.append(("echo rate (outputs of 1-2 instruction words)", f"{q.echo_rate:.1%}"))
    if q.mean_label_diversity is not None:
        what = f"label diversity (mean over {len(q.label_diversity)} classification tasks)"
        rows.append((what, f"{q.mean_label_diversity:.2f}"))
    if q.margins is not None:
        rows += _margin_rows(q.margins)
    return rows


def summary_table(summary: Summary, run_dir: str) -> Table:
    table = Table(title=f"selfinstruct run: {run_dir}", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("instructions generated", str(summary.generated))
    table.add_row("kept", str(summary.kept))
    for reason, count in summary.rejected_by_reason.items():
        table.add_row(f"  rejected: {reason}", str(count))
    if summary.failed_requests:
        table.add_row("failed requests (see failures.jsonl)", str(summary.failed_requests))
    table.add_row("classification tasks", str(summary.classification_tasks))
    table.add_row("tasks with instances", str(summary.tasks))
    table.add_row("instances", str(summary.instances))
    for reason, count in summary.dropped_instances_by_reason.items():
        table.add_row(f"  dropped: {reason}", str(count))
    for what, value in quality_rows(summary.quality) if summary.quality else ():
        table.add_row(what, value)
    table.add_row("tokens in (this session)", f"{summary.prompt_tokens:,}")
    table.add_row("tokens out (this session)", f"{summary.completion_tokens:,}")
    table.add_row("requests answered from cache", str(summary.cached_requests))
    table.add_row("wall time", f"{summary.wall_seconds:.1f} s")
    table.add_row("tokens out per second of generation", f"{summary.tokens_per_second:.1f}")
    return table


def print_summary(summary: Summary, run_dir: str) -> None:
    console = Console()
    console.print(summary_table(summary, run_dir))
    for fmt, path in summary.exports.items():
        console.print(f"export [bold]{fmt}[/bold]: {path}")
    if summary.incomplete:
        return  # the CLI prints why, on stderr, with the exit code 4
    if not summary.reached_target:
        reason = summary.stop_reason or ("stopped at the request cap (--max-requests) before "
                                         "reaching --num-instructions")
        console.print(f"[yellow]{escape(reason)}; raise --max-requests and re-run the same "
                      "command to continue (exit code 3)[/yellow]", soft_wrap=True)
