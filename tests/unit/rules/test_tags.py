"""``export --tags``: per-row quality tags (:mod:`selfinstruct.rules.tags`) computed from a run
directory written by hand (no model runs), carried by every format with the flag, and
nothing changed without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.cli import main
from selfinstruct.records import Instance, Task
from selfinstruct.rules.tags import (
    COLUMN_PREFIX,
    TAG_NAMES,
    RunTags,
    columns,
    instance_tags,
    read_run_tags,
)
from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import open_context
from selfinstruct.stages.export import FORMATS, export, render, write_parquet
from selfinstruct.stages.postprocess import postprocess

FRUIT = "Name a fruit that is red."
REVIEW = "Is this review positive or negative?"
WEATHER = "Say something about the weather today."
SEEDS = [
    {"id": "seed_task_0", "name": "capital", "instruction": "Name the capital city.",
     "instances": [{"input": "France", "output": "Paris"}], "is_classification": False},
]


def _similar(text: str, score: float) -> list:
    return [[text, score], ["Some other instruction.", round(score / 2, 6)]]


def make_run(path: Path, *, calibrated: bool = True, include_seeds: bool = True) -> Path:
    """Three kept instructions (one dropped whole by the filters), the calibrated
    classifier's margins when ``calibrated``, and one seed task in tasks.jsonl."""
    seeds = path.parent / f"{path.name}-seeds.jsonl"
    seeds.write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    ctx = open_context(path, RunConfig(num_instructions=3, seed=7, seeds=str(seeds),
                                       include_seeds=include_seeds))
    ctx.run.instructions.append([
        {"id": "000000.00", "instruction": FRUIT,
         "most_similar": _similar("Name the capital city.", 0.4), "avg_similarity": 0.1},
        {"id": "000000.01", "instruction": REVIEW,
         "most_similar": _similar("Is this sentence positive?", 0.625), "avg_similarity": 0.2},
        {"id": "000000.02", "instruction": WEATHER, "most_similar": [], "avg_similarity": 0.0},
    ])
    labels = [("000000.00", False, -1.25), ("000000.01", True, 2.5), ("000000.02", False, -3.0)]
    ctx.run.classifications.append([
        {"id": i, "is_classification": label,
         **({"margin": margin, "threshold": 0.5} if calibrated else {})}
        for i, label, margin in labels])
    ctx.run.instances.append([
        {"id": "000000.00", "instruction": FRUIT, "is_classification": False, "dropped": [],
         "instances": [{"input": "", "output": "A strawberry is red and sweet."},
                       {"input": "", "output": "A cherry."}]},
        {"id": "000000.01", "instruction": REVIEW, "is_classification": True, "dropped": [],
         "instances": [{"input": "Great film!", "output": "Positive"},
                       {"input": "Dull and far too long.", "output": "negative"}]},
        {"id": "000000.02", "instruction": WEATHER, "is_classification": False,
         "dropped": [], "instances": [{"input": "Sunny", "output": "Sunny"}]},
    ])
    postprocess(ctx)
    ctx.manifest.update(status="finished", model={"name": "smollm2", "backend": "llama.cpp"})
    ctx.save_manifest()
    ctx.close()
    return path


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run")


def _tasks(run: Path) -> list[Task]:
    return [Task.from_json(json.loads(line))
            for line in (run / "tasks.jsonl").read_text().splitlines()]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the tags ----------------------------------------------------------------------------

def test_tags_from_the_run_records(run):
    tags = read_run_tags(run)
    assert tags.nearest == {"000000.00": ("Name the capital city.", 0.4),
                            "000000.01": ("Is this sentence positive?", 0.625)}
    assert tags.classification == {"000000.00": (-1.25, 0.5), "000000.01": (2.5, 0.5),
                                   "000000.02": (-3.0, 0.5)}
    fruit, review, seed = _tasks(run)
    assert instance_tags(review, review.instances[1], tags) == {
        "max_rouge_l": 0.625, "nearest_instruction": "Is this sentence positive?",
        "classification_margin": 2.5, "classification_threshold": 0.5,
        "answer_agreement": None, "ifd": None, "echo": True, "instruction_words": 6, "input_words": 5, "output_words": 1}
    first = instance_tags(fruit, fruit.instances[0], tags)
    assert first["echo"] is False and first["output_words"] == 6 and first["input_words"] == 0
    assert list(first) == list(TAG_NAMES)
    # a seed task (--include-seeds) has no bootstrap record and no classification record
    assert seed.id == "seed_task_0"
    assert instance_tags(seed, seed.instances[0], tags) == {
        "max_rouge_l": None, "nearest_instruction": None, "classification_margin": None,
        "classification_threshold": None, "answer_agreement": None, "ifd": None,
        "echo": False, "instruction_words": 4,
        "input_words": 1, "output_words": 1}


def test_answer_tags_come_from_the_answers_records():
    tags = RunTags.from_records([], [], [{"id": "t1", "instances": [
        {"input": "cat", "output": "tac", "agreement": 0.75, "ifd": 0.4},
        {"input": "dog", "output": "Positive", "ifd": 1.2}]}])
    task = Task("t1", "Reverse the word.", [Instance("cat", "tac")], False)
    row = instance_tags(task, Instance("cat", "tac"), tags)
    assert (row["answer_agreement"], row["ifd"]) == (0.75, 0.4)
    row = instance_tags(task, Instance("dog", "Positive"), tags)
    assert (row["answer_agreement"], row["ifd"]) == (None, 1.2)


def test_tags_are_null_without_margins_or_records():
    tags = RunTags.from_records(
        [{"id": "a", "most_similar": [["x y", 0.5]]},
         {"id": "a", "most_similar": [["later", 0.75]]},   # the last record of an id wins
         {"id": "b", "most_similar": []},
         {"id": "c", "most_similar": [["bad"]]},
         {"id": "d"}],
        [{"id": "a", "is_classification": True, "raw_answer": "Yes"},   # the paper rule
         {"id": "b", "margin": True, "threshold": 0.1},                  # not a number
         {"id": "c", "margin": 0.25}])
    assert tags.nearest == {"a": ("later", 0.75)}
    assert tags.classification == {"c": (0.25, None)}
    task = Task("a", "Answer yes or no.", [Instance("", "Yes")])
    row = instance_tags(task, task.instances[0], tags)
    assert row["classification_margin"] is None and row["echo"] is True
    missing = Task("zzz", "Write a poem.", [Instance("", "Roses.")])
    assert instance_tags(missing, missing.instances[0], RunTags())["max_rouge_l"] is None


def test_echo_is_the_quality_module_definition():
    from selfinstruct.rules import quality

    task = Task("a", REVIEW, [Instance("x", o) for o in ("Positive", "very negative", "",
                                                            "positive or negative, I think")])
    assert [instance_tags(task, i, RunTags())["echo"] for i in task.instances] == \
        [quality.is_echo(REVIEW, i.output) for i in task.instances] == \
        [True, False, False, False]


def test_reading_the_tags_changes_nothing_in_the_run(run):
    with open(run / "instructions.jsonl", "a") as handle:
        handle.write('{"id": "000000.09", "instruction": "half a li')  # a writer mid-line
    before = _snapshot(run)
    assert "000000.09" not in read_run_tags(run).nearest
    assert _snapshot(run) == before


# --- every format carries them, and nothing changes without them -------------------------

def _strip_quality(text: str, fmt: str) -> str:
    if fmt == "alpaca":
        rows = json.loads(text)
        for row in rows:
            row.pop("quality")
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    lines = [json.loads(line) for line in text.splitlines()]
    for row in lines:
        row.pop("quality")
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in lines)


@pytest.mark.parametrize("fmt", ["alpaca", "prompt-completion", "chat"])
def test_text_formats_carry_the_tags(run, fmt):
    from selfinstruct.prompts import PromptTemplates

    tasks, templates, tags = _tasks(run), PromptTemplates.load(), read_run_tags(run)
    plain = render(tasks, fmt, templates, 7)
    tagged = render(tasks, fmt, templates, 7, tags=tags)
    assert "quality" not in plain and tagged != plain
    assert render(tasks, fmt, templates, 7, tags=None) == plain
    # the same rows in the same order (prompt-completion: the same shuffle), plus the tags
    assert _strip_quality(tagged, fmt) == plain
    rows = json.loads(tagged) if fmt == "alpaca" else \
        [json.loads(line) for line in tagged.splitlines()]
    assert all(list(row["quality"]) == list(TAG_NAMES) for row in rows)
    assert sorted(row["quality"]["max_rouge_l"] is None for row in rows) == \
        [False, False, False, False, True]  # the seed task's row
    if fmt != "prompt-completion":  # its rows are shuffled
        expected = [instance_tags(t, i, tags) for t in tasks for i in t.instances]
        assert [row["quality"] for row in rows] == expected


def test_parquet_carries_typed_tag_columns(run, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    tasks = _tasks(run)
    write_parquet(tasks, tmp_path / "plain.parquet")
    write_parquet(tasks, tmp_path / "tagged.parquet", RunTags())  # every run tag null
    write_parquet(tasks, tmp_path / "run.parquet", read_run_tags(run))
    plain = pq.read_table(tmp_path / "plain.parquet")
    tagged = pq.read_table(tmp_path / "tagged.parquet")
    names = [COLUMN_PREFIX + name for name in TAG_NAMES]
    assert plain.column_names == ["id", "instruction", "input", "output", "is_classification"]
    assert tagged.column_names == plain.column_names + names
    assert tagged.select(plain.column_names).equals(plain)
    types = {name: str(tagged.schema.field(name).type) for name in names}
    assert types == {"quality_max_rouge_l": "double", "quality_nearest_instruction": "string",
                     "quality_classification_margin": "double",
                     "quality_classification_threshold": "double",
                     "quality_answer_agreement": "double", "quality_ifd": "double",
                     "quality_echo": "bool",
                     "quality_instruction_words": "int64", "quality_input_words": "int64",
                     "quality_output_words": "int64"}
    assert tagged.column("quality_max_rouge_l").null_count == 5
    table = pq.read_table(tmp_path / "run.parquet")
    pairs = [(t, i) for t in tasks for i in t.instances]
    assert table.select(names).to_pydict() == columns(pairs, read_run_tags(run))
    assert table.column("quality_classification_margin").to_pylist() == \
        [-1.25, -1.25, 2.5, 2.5, None]


@pytest.mark.parametrize("fmt", ["alpaca", "prompt-completion", "chat", "parquet"])
def test_cli_export_with_and_without_tags(run, tmp_path, fmt):
    from selfinstruct.prompts import PromptTemplates

    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    before = _snapshot(run)
    plain, tagged = tmp_path / f"plain.{fmt}", tmp_path / f"tagged.{fmt}"
    assert main(["export", str(run), "--format", fmt, "-o", str(plain)]) == 0
    assert main(["export", str(run), "--format", fmt, "-o", str(tagged), "--tags"]) == 0
    assert _snapshot(run) == before  # export only reads the run
    # without --tags: the bytes of the library's export as it always was (no tags argument)
    library = tmp_path / f"library.{fmt}"
    export(_tasks(run), fmt, library, PromptTemplates.load(), 7)
    assert plain.read_bytes() == library.read_bytes()
    assert plain.read_bytes() != tagged.read_bytes()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(tagged)
        assert table.column("quality_nearest_instruction").to_pylist()[0] == \
            "Name the capital city."
    else:
        assert b"quality" not in plain.read_bytes()
        assert _strip_quality(tagged.read_text(), fmt) == plain.read_text()


def test_cli_default_file_and_no_margin_under_the_paper_rule(tmp_path):
    run = make_run(tmp_path / "paper", calibrated=False, include_seeds=False)
    assert main(["export", str(run), "--format", "chat", "--tags"]) == 0
    rows = [json.loads(line) for line in (run / "exports" / "chat.jsonl").read_text()
            .splitlines()]
    assert len(rows) == 4
    assert {row["quality"]["classification_margin"] for row in rows} == {None}
    assert {row["quality"]["classification_threshold"] for row in rows} == {None}
    assert rows[0]["quality"]["max_rouge_l"] == 0.4
    assert "output_logprob" not in rows[0]["quality"]  # no backend records it


def test_cli_seed_export_with_tags(tmp_path):
    out = tmp_path / "seeds.json"
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    assert main(["export", "--seeds", str(seeds), "-o", str(out), "--tags"]) == 0
    (row,) = json.loads(out.read_text())
    assert row["quality"]["max_rouge_l"] is None and row["quality"]["output_words"] == 1
    assert main(["export", "--seeds", str(seeds), "-o", str(out)]) == 0
    assert "quality" not in json.loads(out.read_text())[0]


def test_hf_with_and_without_tags(run, tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    folder = tmp_path / "hf"
    shard = folder / "data" / "train-00000-of-00001.parquet"
    assert main(["export", str(run), "--format", "hf", "-o", str(folder)]) == 0
    plain = {"card": (folder / "README.md").read_bytes(), "shard": shard.read_bytes()}
    assert b"quality_" not in plain["card"]
    assert pq.read_table(shard).column_names == \
        ["id", "instruction", "input", "output", "is_classification"]

    before = _snapshot(run)
    assert main(["export", str(run), "--format", "hf", "-o", str(folder), "--tags"]) == 0
    assert _snapshot(run) == before
    card = (folder / "README.md").read_text()
    for name in TAG_NAMES:
        assert f"| {COLUMN_PREFIX}{name} |" in card
    assert f"--format hf -o {run.name}-hf --tags" in card
    table = pq.read_table(shard)
    assert table.column_names[5:] == [COLUMN_PREFIX + name for name in TAG_NAMES]
    assert table.column("quality_max_rouge_l").to_pylist() == [0.4, 0.4, 0.625, 0.625, None]
    # the same export without the flag again: the same bytes as the first
    assert main(["export", str(run), "--format", "hf", "-o", str(folder)]) == 0
    assert {"card": (folder / "README.md").read_bytes(), "shard": shard.read_bytes()} == plain


def test_the_card_lists_every_tag():
    from selfinstruct.stages.export_hub import _TAG_COLUMNS

    assert tuple(name for name, *_ in _TAG_COLUMNS) == TAG_NAMES


def test_every_format_is_covered():
    assert set(FORMATS) == {"alpaca", "prompt-completion", "chat", "parquet", "hf"}
