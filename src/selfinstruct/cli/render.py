"""Render results for people: the end-of-run summary table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from selfinstruct.pipeline import Summary


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
    if not summary.reached_target:
        console.print("[yellow]stopped at the request budget (--max-requests) before reaching "
                      "--num-instructions; raise it and re-run to continue[/yellow]")
