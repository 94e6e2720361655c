"""Building the SuperNI test file from a (synthetic) natural-instructions checkout.

The checkout is written in the real task-file format: ``tasks/<task>.json`` with
Contributors, Source, URL, Categories, Reasoning, Definition, Input_language,
Output_language, Instruction_language, Domains, Positive Examples, Negative Examples,
Instances and Instance License; ``splits/default/test_tasks.txt`` lists task names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paths import SHARED

from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.evaluation.superni import load_instances
from selfinstruct.evaluation.superni_build import build, read_split

SUPERNI = SHARED / "data" / "superni-test" / "superni_test_en.jsonl"
FIELDS = ["task", "category", "definition", "id", "input", "outputs", "input_language",
          "output_language"]


def task_file(name: str, category: str, definition: str, instances: list[dict]) -> dict:
    return {
        "Contributors": ["Someone"],
        "Source": ["somedataset"],
        "URL": ["https://example.org"],
        "Categories": [category],
        "Reasoning": [],
        "Definition": [definition],
        "Input_language": ["English"],
        "Output_language": ["English"],
        "Instruction_language": ["English"],
        "Domains": ["Miscellaneous"],
        "Positive Examples": [{"input": "ex in", "output": "ex out", "explanation": "why"}],
        "Negative Examples": [{"input": "neg in", "output": "neg out", "explanation": "no"}],
        "Instances": instances,
        "Instance License": ["Apache 2.0"],
    }


def make_checkout(root: Path, tasks: dict[str, dict], split: list[str]) -> tuple[Path, Path]:
    (root / "tasks").mkdir(parents=True)
    (root / "splits" / "default").mkdir(parents=True)
    for name, data in tasks.items():
        (root / "tasks" / f"{name}.json").write_text(json.dumps(data, indent=4),
                                                      encoding="utf-8")
    split_file = root / "splits" / "default" / "test_tasks.txt"
    split_file.write_text("".join(f"{t}\n" for t in split), encoding="utf-8")
    return root / "tasks", split_file


@pytest.fixture
def checkout(tmp_path):
    entail = [{"id": f"task1-{k}", "input": f" premise {k} \n", "output": ["yes", "Yes."]}
              for k in range(5)]
    titles = [{"id": f"task2-{k}", "input": f"text {k}", "output": [f"Title {k}"]}
              for k in range(3)]
    return make_checkout(tmp_path / "natural-instructions", {
        "task2_titles": task_file("task2_titles", "Title Generation",
                                  "Write a title. ", titles),
        "task1_entail": task_file("task1_entail", "Textual Entailment",
                                  "Does it follow?", entail),
        "task9_unused": task_file("task9_unused", "Other", "Not in the split.", titles),
    }, ["task2_titles", "task1_entail"])


def test_builds_the_shared_schema_in_split_order(checkout):
    tasks_dir, split = checkout
    records = build(tasks_dir, split, max_instances=4)
    assert [r["task"] for r in records] == ["task2_titles"] * 3 + ["task1_entail"] * 4
    assert all(list(r) == FIELDS for r in records)
    first_entail = records[3]
    assert first_entail == {
        "task": "task1_entail", "category": "Textual Entailment",
        "definition": "Does it follow?", "id": "task1-0", "input": " premise 0 \n",
        "outputs": ["yes", "Yes."], "input_language": ["English"],
        "output_language": ["English"],
    }
    assert records[0]["definition"] == "Write a title. "  # raw, not stripped


def test_cli_build_output_loads_as_data(checkout, tmp_path, capsys):
    tasks_dir, split = checkout
    out = tmp_path / "test_en.jsonl"
    assert main(["eval", "superni", "build", "--tasks-dir", str(tasks_dir), "--split",
                 str(split), "-o", str(out)]) == 0
    assert "wrote 8 instances of 2 tasks" in capsys.readouterr().out
    instances = load_instances(out)
    assert len(instances) == 8 and instances[-1].outputs == ("yes", "Yes.")


@pytest.mark.skipif(not SUPERNI.is_file(), reason=f"the shared SuperNI test set is not at "
                                                  f"{SUPERNI}")
def test_rebuilds_shared_lines_byte_for_byte(tmp_path):
    """Task files made from two tasks of the shared file, with extra instances after the
    first 100, rebuild exactly the shared file's lines for those tasks."""
    lines = SUPERNI.read_text(encoding="utf-8").splitlines(keepends=True)
    by_task: dict[str, list[str]] = {}
    for line in lines:
        by_task.setdefault(json.loads(line)["task"], []).append(line)
    names = [n for n in by_task if len(by_task[n]) == 100][:2]
    tasks = {}
    for name in names:
        rows = [json.loads(line) for line in by_task[name]]
        instances = [{"id": r["id"], "input": r["input"], "output": r["outputs"]} for r in rows]
        instances += [{"id": f"{name}-extra-{k}", "input": "x", "output": ["y"]}
                      for k in range(7)]
        tasks[name] = task_file(name, rows[0]["category"], rows[0]["definition"], instances)
    tasks_dir, split = make_checkout(tmp_path / "ni", tasks, names)
    out = tmp_path / "rebuilt.jsonl"
    main(["eval", "superni", "build", "--tasks-dir", str(tasks_dir), "--split", str(split),
          "-o", str(out)])
    assert out.read_text(encoding="utf-8") == "".join(by_task[names[0]] + by_task[names[1]])


def test_split_file_skips_blank_lines_comments_and_json_suffix(tmp_path):
    split = tmp_path / "s.txt"
    split.write_text("# test tasks\n\ntask1_a\ntask2_b.json\n")
    assert read_split(split) == ["task1_a", "task2_b"]


def test_missing_task_file_names_the_task(checkout):
    tasks_dir, split = checkout
    split.write_text("task1_entail\ntask404_missing\n")
    with pytest.raises(UserError, match=r"task404_missing.json not found \(task "
                                        r"'task404_missing' is in the split file\)"):
        build(tasks_dir, split)


def test_malformed_task_file_names_the_file(checkout):
    tasks_dir, split = checkout
    (tasks_dir / "task1_entail.json").write_text('{"Definition": [')
    with pytest.raises(UserError, match=r"task1_entail.json: not valid JSON"):
        build(tasks_dir, split)


@pytest.mark.parametrize("change, message", [
    ({"Definition": []}, "field 'Definition' must be a non-empty list of strings"),
    ({"Categories": None}, "field 'Categories' must be a non-empty list of strings"),
    ({"Instances": []}, "field 'Instances' must be a non-empty list"),
    ({"Instances": [{"id": "x", "input": "y", "output": []}]},
     r"Instances\[0\]: field 'output' must be a non-empty list of strings"),
])
def test_bad_task_fields(checkout, change, message):
    tasks_dir, split = checkout
    path = tasks_dir / "task1_entail.json"
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message):
        build(tasks_dir, split)


def test_missing_split_and_tasks_dir(tmp_path, checkout):
    tasks_dir, split = checkout
    with pytest.raises(UserError, match="--split: file not found"):
        build(tasks_dir, tmp_path / "nope.txt")
    with pytest.raises(UserError, match="--tasks-dir: not a directory"):
        build(tmp_path / "nope", split)
