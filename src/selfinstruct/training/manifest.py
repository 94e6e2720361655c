"""``finetune.json``: what a fine-tune directory holds, and whether a re-run may resume it.

A fine-tune is resumable when the re-run trains the same thing: same base model, same
data (by content hash), same template set and the options that change what a step
does (``IDENTITY_OPTIONS``). Options that only say how long to train or how to report
(``--max-steps``, ``--epochs``, ``--logging-steps``, ``--device``...) may change between
runs, which is how a smoke run is extended. Anything else is refused with the list of
differences, since mixing two fine-tunes in one set of checkpoints would produce a model
that matches neither description.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import atomic_write_text

MANIFEST_NAME = "finetune.json"
FORMAT_VERSION = 1
OWNED_PATHS = ("adapter", "merged", "checkpoints", MANIFEST_NAME)
IDENTITY_OPTIONS = ("base", "templates", "full", "lora_r", "lora_alpha", "lora_dropout",
                    "learning_rate", "max_seq_len", "batch_size", "grad_accum", "seed")


def identity(manifest: dict) -> dict:
    """The fields two runs must share to continue one another's checkpoints."""
    options = manifest.get("options", {})
    data = manifest.get("data", {})
    return {"data sha256": data.get("sha256"),
            **{name: options.get(name) for name in IDENTITY_OPTIONS}}


def differences(old: dict, new: dict) -> list[str]:
    """``'name: old -> new'`` for each identity field that differs."""
    before, after = identity(old), identity(new)
    return [f"{name}: {_short(before.get(name))} -> {_short(after.get(name))}"
            for name in after if before.get(name) != after.get(name)]


def _short(value) -> str:
    if isinstance(value, str) and len(value) == 64:  # a sha256
        return value[:12]
    return json.dumps(value)


def read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc}); use --force-new to start over") from None


def write_manifest(out: Path, manifest: dict) -> Path:
    path = out / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path


def prepare_out_dir(out: Path, manifest: dict, force_new: bool) -> dict | None:
    """Check ``out`` may hold this fine-tune; the previous manifest when it resumes one.

    With ``force_new`` the previous fine-tune's files (and only those) are removed.
    """
    previous = read_manifest(out)
    if force_new:
        for name in OWNED_PATHS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        return None
    if previous is None:
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"{out} is not empty and holds no {MANIFEST_NAME}; "
                            "give a new --out, or --force-new to write into it")
        return None
    changed = differences(previous, manifest)
    if changed:
        raise UserError(f"{out} holds a fine-tune with other data or options "
                        f"({'; '.join(changed)}); give another --out, or --force-new to "
                        "replace it")
    return previous
