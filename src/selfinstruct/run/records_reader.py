"""Read a run directory's records without changing anything in it.

:class:`selfinstruct.run.rundir.JsonlLog.open` repairs a half-written last line by truncating
the file, which is right for the writer that resumes a run and wrong for a reader (the
report, the review app) that may look at a run still being written: here an unfinished
last line is simply not read. Any other unreadable line is reported, as everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.run.rundir import JsonlLog, read_manifest


def read_records(path: Path) -> list[dict]:
    """Every complete line of a JSONL file, the file left as it is; [] when it is absent."""
    return JsonlLog(path).read()


@dataclass
class RunRecords:
    """Everything a run directory holds that the report and the review app show."""

    path: Path
    manifest: dict
    instructions: list[dict]
    rejects: list[dict]
    classifications: list[dict]
    instances: list[dict]
    instance_rejects: list[dict]
    tasks: list[dict]
    failures: list[dict]

    @classmethod
    def load(cls, run_dir: str | Path) -> RunRecords:
        path = Path(run_dir)
        manifest = read_manifest(path) if path.is_dir() else None
        if manifest is None:
            raise UserError(f"{path} is not a run directory (no manifest.json); make one with "
                            "'selfinstruct run --out DIR'")
        return cls(
            path=path,
            manifest=manifest,
            instructions=read_records(path / "instructions.jsonl"),
            rejects=read_records(path / "rejects.jsonl"),
            classifications=read_records(path / "classifications.jsonl"),
            instances=read_records(path / "instances.jsonl"),
            instance_rejects=read_records(path / "instance_rejects.jsonl"),
            tasks=read_records(path / "tasks.jsonl"),
            failures=read_records(path / "failures.jsonl"),
        )

    def funnel(self):
        from selfinstruct.analysis.funnel import compute_funnel

        return compute_funnel(self.instructions, self.rejects, self.classifications,
                              self.instances, self.instance_rejects, self.tasks, self.failures)
