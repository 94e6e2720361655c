"""The seed loader: the bundled set, the original set, and one clear error per bad line."""

import json

import pytest
from paths import require_shared

from selfinstruct.errors import UserError
from selfinstruct.seeds import load_seeds


def test_bundled_seeds_load():
    seeds = load_seeds()
    assert len(seeds) == 175
    assert all(t.instances for t in seeds)


def test_original_seeds_load():
    seeds = load_seeds(require_shared() / "seed_tasks.jsonl")
    assert len(seeds) == 175
    assert sum(t.is_classification for t in seeds) == 26


GOOD = {"id": "s0", "name": "n", "instruction": "Do a thing well.",
        "instances": [{"input": "", "output": "ok"}], "is_classification": False}


@pytest.mark.parametrize("line,message", [
    ("{not json", r"seeds.jsonl:2: not valid JSON"),
    (json.dumps([1, 2]), r"seeds.jsonl:2: expected a JSON object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "instruction"}),
     r"seeds.jsonl:2: field 'instruction' is missing"),
    (json.dumps({**GOOD, "instruction": "  "}), r"seeds.jsonl:2: field 'instruction' is empty"),
    (json.dumps({**GOOD, "is_classification": "no"}),
     r"seeds.jsonl:2: field 'is_classification' must be true or false, got str"),
    (json.dumps({**GOOD, "instances": [{"input": ""}]}),
     r"seeds.jsonl:2: field 'output' is missing"),
    (json.dumps({**GOOD, "instances": "x"}), r"seeds.jsonl:2: field 'instances' must be a list"),
    (json.dumps(GOOD), r"seeds.jsonl:2: field 'id' repeats 's0' from line 1"),
])
def test_bad_seed_line_names_line_and_field(tmp_path, line, message):
    path = tmp_path / "seeds.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(UserError, match=message):
        load_seeds(path)


def test_missing_seed_file(tmp_path):
    with pytest.raises(UserError, match="--seeds: file not found"):
        load_seeds(tmp_path / "nope.jsonl")
