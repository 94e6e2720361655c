"""Load a set of prompt templates from a directory (ours by default).

The files and their meaning follow the original Self-Instruct layout:

==========================================  ==============================================
``instruction_gen_header.txt``              first line of the bootstrap prompt
``instruction_gen_header_classification.txt``  the same, when asking for classification tasks
``clf_task_identification_template_1.txt``  few-shot Yes/No classification prompt
``instance_gen_input_first_for_gen.txt``    few-shot input-first instance prompt
``instance_gen_output_first_for_clf.txt``   few-shot output-first instance prompt
``finetuning_templates.json``               fine-tuning and evaluation formats
==========================================  ==============================================

The original distribution names the last file ``finetuning_and_eval_templates.json``;
either name is accepted. Files are read as UTF-8 bytes exactly as stored: no stripping,
no newline translation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from selfinstruct.errors import UserError

FILES = {
    "instruction_header": "instruction_gen_header.txt",
    "instruction_header_classification": "instruction_gen_header_classification.txt",
    "classification": "clf_task_identification_template_1.txt",
    "instance_input_first": "instance_gen_input_first_for_gen.txt",
    "instance_output_first": "instance_gen_output_first_for_clf.txt",
}
FINETUNING_FILES = ("finetuning_templates.json", "finetuning_and_eval_templates.json")
FINETUNING_KEYS = (
    "finetuning_templates_with_input",
    "finetuning_templates_without_input",
    "human_eval_prompt_with_input",
    "human_eval_prompt_without_input",
)


def bundled_dir() -> Path:
    return Path(str(resources.files("selfinstruct") / "prompts" / "templates"))


@dataclass(frozen=True)
class PromptTemplates:
    instruction_header: str
    instruction_header_classification: str
    classification: str
    instance_input_first: str
    instance_output_first: str
    finetuning_with_input: tuple[tuple[str, str], ...]
    finetuning_without_input: tuple[tuple[str, str], ...]
    eval_with_input: str
    eval_without_input: str
    source: str

    @classmethod
    def load(cls, directory: str | Path | None = None) -> PromptTemplates:
        folder = Path(directory) if directory is not None else bundled_dir()
        if not folder.is_dir():
            raise UserError(f"--prompts: not a directory: {folder}")
        texts = {}
        for field, name in FILES.items():
            path = folder / name
            if not path.is_file():
                raise UserError(f"--prompts: {path} is missing")
            try:
                with open(path, encoding="utf-8", newline="") as handle:
                    texts[field] = handle.read()
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
        tuning_path = next((folder / n for n in FINETUNING_FILES if (folder / n).is_file()), None)
        if tuning_path is None:
            raise UserError(f"--prompts: {folder / FINETUNING_FILES[0]} is missing")
        try:
            tuning = json.loads(tuning_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{tuning_path}: not valid JSON ({exc})") from None
        for key in FINETUNING_KEYS:
            if key not in tuning:
                raise UserError(f"{tuning_path}: field '{key}' is missing")
        return cls(
            **texts,
            finetuning_with_input=tuple(tuple(p) for p in tuning[FINETUNING_KEYS[0]]),
            finetuning_without_input=tuple(tuple(p) for p in tuning[FINETUNING_KEYS[1]]),
            eval_with_input=tuning["human_eval_prompt_with_input"],
            eval_without_input=tuning["human_eval_prompt_without_input"],
            source=str(folder),
        )
