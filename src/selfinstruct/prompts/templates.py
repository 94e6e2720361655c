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

import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.files import load_json

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
            tuning = load_json(tuning_path.read_text(encoding="utf-8"), str(tuning_path))
        except UnicodeDecodeError as exc:
            raise UserError(f"{tuning_path}: not UTF-8 text ({exc.reason})") from None
        if not isinstance(tuning, dict):
            raise UserError(f"{tuning_path}: must hold a JSON object, not "
                            f"{type(tuning).__name__}")
        for key in FINETUNING_KEYS:
            if key not in tuning:
                raise UserError(f"{tuning_path}: field '{key}' is missing")
        check_finetuning_templates(tuning, tuning_path)
        return cls(
            **texts,
            finetuning_with_input=tuple(tuple(p) for p in tuning[FINETUNING_KEYS[0]]),
            finetuning_without_input=tuple(tuple(p) for p in tuning[FINETUNING_KEYS[1]]),
            eval_with_input=tuning["human_eval_prompt_with_input"],
            eval_without_input=tuning["human_eval_prompt_without_input"],
            source=str(folder),
        )


# The fields each fine-tuning and evaluation template may name, and must name.
_PROMPT_FIELDS = {
    "finetuning_templates_with_input": {"instruction", "input"},
    "finetuning_templates_without_input": {"instruction"},
    "human_eval_prompt_with_input": {"instruction", "input"},
    "human_eval_prompt_without_input": {"instruction"},
}


def _template_fields(text: str, where: str, allowed: set[str], needed: str) -> None:
    """``text`` as a ``str.format`` template: it parses (no lone brace), names only
    ``allowed`` fields, plainly (no index, conversion or format spec), and names
    ``needed``."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise UserError(f"{where}: not a valid template ({exc}; write a literal brace as "
                        "{{ or }})") from None
    names = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in allowed:
            shown = "{" + name + "}" if name else "{}"
            raise UserError(f"{where}: unknown field {shown}; it may use "
                            f"{', '.join('{' + a + '}' for a in sorted(allowed))}")
        if spec or conversion:
            raise UserError(f"{where}: field {{{name}}} takes no conversion or format spec")
        names.add(name)
    if needed not in names:
        raise UserError(f"{where}: the template lacks {{{needed}}}")


def check_finetuning_templates(tuning: dict, path: Path) -> None:
    """Every fine-tuning and evaluation template of ``finetuning_templates.json`` checked
    before any model call: each list non-empty, of [prompt, completion] pairs of strings;
    prompts name ``{instruction}`` (and may name ``{input}`` where an input is given),
    completions name ``{output}``; no unknown field, no lone brace."""
    for key in FINETUNING_KEYS[:2]:
        pairs = tuning[key]
        if not isinstance(pairs, list) or not pairs:
            raise UserError(f"{path}: field '{key}' must be a non-empty list of "
                            "[prompt, completion] pairs")
        for k, pair in enumerate(pairs):
            where = f"{path}: {key}[{k}]"
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(isinstance(t, str) for t in pair)):
                raise UserError(f"{where}: must be a [prompt, completion] pair of strings")
            _template_fields(pair[0], f"{where} (prompt)", _PROMPT_FIELDS[key], "instruction")
            _template_fields(pair[1], f"{where} (completion)", {"output"}, "output")
    for key in FINETUNING_KEYS[2:]:
        text = tuning[key]
        if not isinstance(text, str):
            raise UserError(f"{path}: field '{key}' must be a string")
        _template_fields(text, f"{path}: {key}", _PROMPT_FIELDS[key], "instruction")
