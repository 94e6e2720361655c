"""The evaluation output directory: ``run.json`` records what produced it and guards resume.

An evaluation command (``eval superni run``, ``eval user-oriented run``/``judge``) writes
into ``--out DIR``. The first run writes ``DIR/run.json`` with the command, the package
version, the format version and the settings that decide every answer (model and its
sha256, prompt template, sampling, data file hash). A later run on the same DIR resumes
only with the same settings; otherwise it stops with a message naming the setting,
because appending answers of another model or template to the same file would mix them.
Settings that only choose *which* items to run (``--tasks``, ``--max-per-task``,
``--limit``) are free to change between runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from selfinstruct import __version__
from selfinstruct.errors import UserError
from selfinstruct.files import atomic_write_text, now

EVAL_FORMAT_VERSION = 1


def open_eval_dir(path: str | Path, command: str, settings: dict) -> dict:
    """Create ``path`` or check its ``run.json``; returns the manifest (a dict)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out: {folder} exists and is not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "run.json"
    if not manifest_path.exists():
        manifest = {"format_version": EVAL_FORMAT_VERSION, "command": command,
                    "selfinstruct_version": __version__, "created": now(), "settings": settings}
        save_manifest(folder, manifest)
        return manifest
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{manifest_path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if manifest.get("format_version") != EVAL_FORMAT_VERSION:
        raise UserError(f"{manifest_path}: format_version {manifest.get('format_version')!r} "
                        f"is not supported (this version reads {EVAL_FORMAT_VERSION})")
    if manifest.get("command") != command:
        raise UserError(f"--out: {folder} holds the output of '{manifest.get('command')}', "
                        f"not '{command}'; choose another --out")
    old = manifest.get("settings", {})
    for key, value in settings.items():
        if old.get(key) != value:
            raise UserError(
                f"--out: {folder} was made with {key}={old.get(key)!r}, not {value!r}; "
                "re-run with the same options to resume, or choose another --out"
            )
    return manifest


def save_manifest(folder: str | Path, manifest: dict) -> None:
    atomic_write_text(Path(folder) / "run.json",
                      json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def record_session(folder: str | Path, manifest: dict, summary: dict) -> None:
    """Store the latest session's summary (wall time, usage) in ``run.json``."""
    manifest["last_session"] = {"finished": now(), **summary}
    save_manifest(folder, manifest)
