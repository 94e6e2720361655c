"""The project's templates with a short classification template, for tests of the
calibrated rule: each of its 10 prompts costs little prefill on CI's two cores."""

from __future__ import annotations

import shutil
from pathlib import Path

import selfinstruct.prompts
from selfinstruct.prompts import PromptTemplates
from selfinstruct.rules.classification import build_template, demonstrations


def short_prompts(folder: Path) -> Path:
    """A copy of the bundled templates in ``folder``, whose classification template keeps
    its first 6 demonstrations."""
    source = Path(selfinstruct.prompts.__file__).parent / "templates"
    shutil.copytree(source, folder)
    bundled = PromptTemplates.load().classification
    short = build_template(bundled.split("\n\n", 1)[0], demonstrations(bundled)[:6])
    (folder / "clf_task_identification_template_1.txt").write_text(short)
    return folder
