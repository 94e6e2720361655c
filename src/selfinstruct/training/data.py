"""Read any export of the pipeline back as fine-tuning examples.

========================  =====================================  ===========================
format (detected)         how it is recognised                   what an example becomes
========================  =====================================  ===========================
``alpaca``                the file is one JSON list              a fine-tuning template drawn
                                                                 per example (seeded)
``prompt-completion``     JSONL rows with ``prompt``,            used as written
                          ``completion``
``chat``                  JSONL rows with ``messages``           user / assistant text; the
                                                                 tokenizer lays it out later
``parquet``               ``.parquet`` extension or ``PAR1``     as alpaca
                          magic bytes
========================  =====================================  ===========================

The format is read from the content, not the name, so a renamed export still works.
Template choice is per example, as in the paper, so the fine-tuned model does not
depend on one prompt layout; the generator is derived from the seed and the example's
position, so the same file and seed always give the same examples.

Every problem is a :class:`UserError` naming the file, the line (or row) and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.evaluation.jsonl import read_jsonl
from selfinstruct.prompts import PromptTemplates, finetuning_example
from selfinstruct.run.randomness import derived_rng

FORMATS = ("alpaca", "prompt-completion", "chat", "parquet")
PARQUET_MAGIC = b"PAR1"
INSTANCE_FIELDS = ("instruction", "input", "output")


@dataclass(frozen=True)
class Example:
    """One training example. ``chat`` examples hold the user message in ``prompt`` and the
    assistant message in ``completion``; the tokenizer's chat template lays them out."""

    prompt: str
    completion: str
    chat: bool = False


@dataclass(frozen=True)
class TrainingData:
    path: Path
    format: str
    sha256: str
    examples: tuple[Example, ...]


def read_training_data(path: str | Path, templates: PromptTemplates | None = None,
                       seed: int = 42) -> TrainingData:
    """All examples of an export file, with its detected format and content hash."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--data: file not found: {file}")
    raw = file.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if file.suffix == ".parquet" or raw.startswith(PARQUET_MAGIC):
        rows = _parquet_rows(file)
        templates = templates or PromptTemplates.load()
        examples = _instances_to_examples(file, rows, "row", templates, seed)
        return TrainingData(file, "parquet", digest, examples)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text ({exc.reason})") from None
    if not text.strip():
        raise UserError(f"{file}: the file is empty; give an export of 'selfinstruct export'")
    if text.lstrip().startswith("["):
        rows = _alpaca_rows(file, text)
        templates = templates or PromptTemplates.load()
        examples = _instances_to_examples(file, rows, "item", templates, seed)
        return TrainingData(file, "alpaca", digest, examples)
    fmt, examples = _jsonl_examples(file, text)
    return TrainingData(file, fmt, digest, examples)


def _alpaca_rows(file: Path, text: str) -> list[tuple[int, object]]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{file}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(rows, list):
        raise UserError(f"{file}: expected a JSON list of instruction/input/output objects")
    return list(enumerate(rows, start=1))


def _parquet_rows(file: Path) -> list[tuple[int, object]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{file}: reading parquet needs pyarrow: "
                        "pip install 'selfinstruct[parquet]'") from None
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UserError(f"{file}: not a readable parquet file ({exc})") from None
    missing = [name for name in INSTANCE_FIELDS if name not in table.column_names]
    if missing:
        raise UserError(f"{file}: parquet column '{missing[0]}' is missing "
                        f"(expected {', '.join(INSTANCE_FIELDS)})")
    return list(enumerate(table.select(list(INSTANCE_FIELDS)).to_pylist(), start=1))


def _instances_to_examples(file: Path, rows: list[tuple[int, object]], unit: str,
                           templates: PromptTemplates, seed: int) -> tuple[Example, ...]:
    if not rows:
        raise UserError(f"{file}: holds no examples")
    examples = []
    for number, row in rows:
        where = f"{file}: {unit} {number}"
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object with instruction, input, output")
        instruction = _text_field(row, "instruction", where)
        input_text = _text_field(row, "input", where, optional=True)
        output = _text_field(row, "output", where)
        rng = derived_rng(seed, "finetune-template", number)
        prompt, completion = finetuning_example(templates, instruction, input_text, output, rng)
        examples.append(Example(prompt, completion))
    return tuple(examples)


def _jsonl_examples(file: Path, text: str) -> tuple[str, tuple[Example, ...]]:
    fmt = None
    examples = []
    for where, row in read_jsonl(file, "--data"):
        row_format = "chat" if "messages" in row else "prompt-completion"
        if fmt is None:
            fmt = row_format
        elif row_format != fmt:
            raise UserError(f"{where}: a {row_format} row in a {fmt} file "
                            f"({'field messages' if fmt == 'chat' else 'no field messages'} "
                            "expected)")
        examples.append(_chat_example(row, where) if fmt == "chat"
                        else Example(_text_field(row, "prompt", where),
                                     _text_field(row, "completion", where)))
    if not examples or fmt is None:  # fmt is set by the first row
        raise UserError(f"{file}: holds no examples")
    return fmt, tuple(examples)


def _chat_example(row: dict, where: str) -> Example:
    messages = row["messages"]
    if not isinstance(messages, list) or len(messages) != 2:
        raise UserError(f"{where}: field 'messages' must be a list of two messages "
                        "(user, then assistant)")
    for k, (message, role) in enumerate(zip(messages, ("user", "assistant"))):
        if not isinstance(message, dict) or message.get("role") != role:
            raise UserError(f"{where}: field 'messages[{k}].role' must be '{role}'")
        _text_field(message, "content", f"{where}: messages[{k}]")
    return Example(messages[0]["content"], messages[1]["content"], chat=True)


def _text_field(row: dict, name: str, where: str, optional: bool = False) -> str:
    value = row.get(name)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        state = "is missing" if value is None else f"must be a string, not {type(value).__name__}"
        raise UserError(f"{where}: field '{name}' {state}")
    if not optional and not value.strip():
        raise UserError(f"{where}: field '{name}' is empty")
    return value
