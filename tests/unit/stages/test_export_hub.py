"""``export --format hf``: the Parquet shards, the dataset card, and the upload (with a fake
``HfApi``: no network here). The run directory is written by hand, no model runs."""

from __future__ import annotations

import json
import shlex
from typing import ClassVar

import pytest

from selfinstruct.cli import build_parser, main
from selfinstruct.cli.options import config_from_args
from selfinstruct.records import Instance, Task
from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import open_context
from selfinstruct.stages.export_hub import (
    reproduce_command,
    seeds_license,
    shard_tasks,
    size_category,
)
from selfinstruct.stages.postprocess import postprocess

SHA = "ab" * 32
TOKEN = "hf_SECRETtoken1234567890"


def make_run(path, **config):
    """A finished run of three instructions: two kept with instances, one dropped whole."""
    ctx = open_context(path, RunConfig(num_instructions=3, seed=7, **config))
    ctx.run.instructions.append([{"id": f"000000.0{k}", "instruction": text} for k, text in
                                 enumerate(["Name a fruit that is red.",
                                            "Is this review positive or negative?",
                                            "Say something about the weather today."])])
    ctx.run.rejects.append([
        {"id": "000000.03", "stage": "bootstrap", "reason": "too_similar", "text": "x"},
        {"id": "000000.04", "stage": "bootstrap", "reason": "too_similar", "text": "y"},
        {"id": "000001.00", "stage": "bootstrap", "reason": "blacklisted", "text": "z"},
    ])
    ctx.run.classifications.append([
        {"id": "000000.00", "is_classification": False},
        {"id": "000000.01", "is_classification": True},
        {"id": "000000.02", "is_classification": False},
    ])
    ctx.run.instances.append([
        {"id": "000000.00", "instruction": "Name a fruit that is red.",
         "is_classification": False, "dropped": [],
         "instances": [{"input": "", "output": "A strawberry."},
                       {"input": "", "output": "A cherry."}]},
        {"id": "000000.01", "instruction": "Is this review positive or negative?",
         "is_classification": True, "dropped": [{"instance": None, "reason": "truncated"}],
         "instances": [{"input": "Great film!", "output": "Positive"},
                       {"input": "Dull.", "output": "Negative"},
                       {"input": "Dull.", "output": "Negative"}]},
        {"id": "000000.02", "instruction": "Say something about the weather today.",
         "is_classification": False, "dropped": [],
         "instances": [{"input": "Sunny", "output": "Sunny"}]},
    ])
    postprocess(ctx)
    ctx.manifest.update(status="finished", finished_at="2026-11-30T10:00:00+00:00",
                        model={"name": "smollm2", "backend": "llama.cpp",
                               "path": "/somewhere/smollm2.gguf", "sha256": SHA})
    ctx.save_manifest()
    ctx.close()
    return path


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run")


def _load(folder, cache):
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset(str(folder), split="train", cache_dir=str(cache))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)


def test_hf_export_loads_with_datasets_and_equals_the_alpaca_rows(run, tmp_path, capsys):
    alpaca, folder = tmp_path / "alpaca.json", tmp_path / "hf"
    assert main(["export", str(run), "--format", "alpaca", "-o", str(alpaca)]) == 0
    assert main(["export", str(run), "--format", "hf", "-o", str(folder)]) == 0
    assert (folder / "data" / "train-00000-of-00001.parquet").is_file()
    data = _load(folder, tmp_path / "cache")
    rows = [{k: r[k] for k in ("instruction", "input", "output")} for r in data]
    expected = json.loads(alpaca.read_text())
    assert rows == expected and len(rows) == 4  # 2 + 2 (a duplicate dropped), 1 task dropped
    assert [r["id"] for r in data] == ["000000.00", "000000.00", "000000.01", "000000.01"]
    assert [r["is_classification"] for r in data] == [False, False, True, True]


def test_the_card_metadata_is_what_the_hub_reads(run, tmp_path):
    from huggingface_hub import DatasetCard

    folder = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf", "-o", str(folder)]) == 0
    card = DatasetCard.load(folder / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0"  # the bundled seeds
    assert meta["language"] == ["en"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*.parquet"}]}]


def test_the_card_says_how_the_data_was_made(run, tmp_path):
    folder = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf", "-o", str(folder)]) == 0
    text = (folder / "README.md").read_text()
    assert SHA in text and "`smollm2`" in text
    assert "- **recipe**: `refined`" in text and "- **seed**: 7" in text
    for row in ("| candidate instructions generated | 6 |", "| rejected | 3 |",
                "| &nbsp;&nbsp;too_similar | 2 |", "| &nbsp;&nbsp;blacklisted | 1 |",
                "| instructions kept | 3 |", "| &nbsp;&nbsp;truncated | 1 |",
                "| &nbsp;&nbsp;duplicate | 1 |", "| &nbsp;&nbsp;input_equals_output | 1 |",
                "| **final instances** | **4** |"):
        assert row in text, row
    for key in RunConfig().as_dict():  # every parameter
        assert f"| {key} |" in text, key
    assert ("selfinstruct run --out runs/run --model smollm2 --seed 7 --num-instructions 3 "
            "--recipe refined") in text
    assert "/somewhere" not in text  # the model file's name only, not where it was


@pytest.mark.parametrize("config", [
    {},
    {"model": "gemma-3-270m", "seed": 3, "num_instructions": 500, "recipe": "refined",
     "bootstrap_temperature": 0.9, "prefix_cache": False, "include_seeds": True,
     "max_concurrency": 4, "seeds": "my seeds.jsonl", "classifier": "paper"},
    {"model": "meta-llama/Llama-3.1-8B", "base_url": "http://a:8000/v1,http://b:8000/v1",
     "chat": True, "max_cost": 2.5, "input_price": 0.1},
])
def test_the_reproduce_command_parses_back_to_the_same_parameters(config):
    original = RunConfig(**config)
    command = reproduce_command(original.as_dict(), "runs/x y")
    argv = shlex.split(command)
    assert argv[:4] == ["selfinstruct", "run", "--out", "runs/x y"]
    args = build_parser().parse_args(argv[1:])
    assert config_from_args(args).as_dict() == original.as_dict()
    for name, value in config.items():  # every non-default option is spelled out
        if name not in ("base_url",) and not isinstance(value, bool):
            assert "--" + name.replace("_", "-") in argv


def test_license_follows_the_seed_tasks(tmp_path):
    assert seeds_license({"config": {"seeds": None}})[0] == "apache-2.0"
    mine = tmp_path / "mine.jsonl"
    mine.write_text("{}\n")
    license_id, note = seeds_license({"config": {"seeds": str(mine)}})
    assert license_id == "other" and "--license" in note
    assert seeds_license({"config": {"seeds": str(mine)}}, "cc-by-4.0")[0] == "cc-by-4.0"
    from paths import ORIGINAL

    original = ORIGINAL / "seed_tasks.jsonl"
    if original.is_file():  # recognised by its sha256
        assert seeds_license({"config": {"seeds": str(original)}})[0] == "apache-2.0"


def test_an_unknown_seed_file_says_other_on_the_card(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "s", "instruction": "Add one to the number.",
                                 "is_classification": False,
                                 "instances": [{"input": "2", "output": "3"}]}) + "\n")
    run = make_run(tmp_path / "run", seeds=str(seeds))
    folder = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf", "-o", str(folder)]) == 0
    assert 'license: "other"' in (folder / "README.md").read_text()
    assert main(["export", str(run), "--format", "hf", "-o", str(folder),
                 "--license", "mit"]) == 0
    assert 'license: "mit"' in (folder / "README.md").read_text()


def test_size_categories():
    assert [size_category(n) for n in (0, 999, 1000, 52_000, 999_999, 10**6)] == \
        ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M"]


def test_shards_never_split_a_task_and_all_load(run, tmp_path):
    tasks = [Task(f"t{k}", f"Do thing {k}.", [Instance(str(i), "x") for i in range(k % 3 + 1)])
             for k in range(7)]
    shards = shard_tasks(tasks, rows_per_shard=3)
    assert [t for shard in shards for t in shard] == tasks
    assert all(sum(len(t.instances) for t in s) <= 3 for s in shards)
    assert shard_tasks([], 3) == [[]]

    from selfinstruct.stages.export_hub import write_hub_dataset

    folder = write_hub_dataset(run, tasks, tmp_path / "hf", rows_per_shard=3)
    names = sorted(p.name for p in (folder / "data").iterdir())
    assert names == [f"train-{k:05d}-of-{len(shards):05d}.parquet" for k in range(len(shards))]
    assert len(_load(folder, tmp_path / "cache")) == sum(len(t.instances) for t in tasks)
    write_hub_dataset(run, tasks[:1], folder)  # a smaller export leaves no stale shard
    assert [p.name for p in (folder / "data").iterdir()] == ["train-00000-of-00001.parquet"]


def test_push_without_a_token_is_one_line_and_writes_nothing(run, tmp_path, capsys):
    folder = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf", "-o", str(folder),
                 "--push-to-hub", "me/data"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "HF_TOKEN" in err
    assert not folder.exists()


@pytest.mark.parametrize("args,message", [
    (["--format", "alpaca", "--push-to-hub", "me/data"], "--push-to-hub applies to --format hf"),
    (["--format", "hf", "--push-to-hub", "data"], "give the repository as user/name"),
    (["--format", "hf", "--private"], "--private applies to --push-to-hub"),
])
def test_bad_hub_options_exit_2(run, capsys, args, message):
    assert main(["export", str(run), *args]) == 2
    assert message in capsys.readouterr().err


class FakeHfApi:
    calls: ClassVar[list] = []
    fail = False

    def __init__(self, token=None):
        FakeHfApi.calls.append(("init", {"token": token}))

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        if FakeHfApi.fail:
            raise RuntimeError(f"401 Unauthorized: bad token {TOKEN}")
        FakeHfApi.calls.append(("upload_folder", kwargs))


def _fake_hub(monkeypatch, fail=False):
    import huggingface_hub

    FakeHfApi.calls, FakeHfApi.fail = [], fail
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setenv("HF_TOKEN", TOKEN)


def test_push_uploads_the_folder_and_the_token_goes_nowhere_else(run, tmp_path, capsys,
                                                                  monkeypatch):
    _fake_hub(monkeypatch)
    folder = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf", "-o", str(folder),
                 "--push-to-hub", "me/data", "--private"]) == 0
    calls = dict(FakeHfApi.calls)
    assert calls["init"] == {"token": TOKEN}
    assert calls["create_repo"] == {"repo_id": "me/data", "repo_type": "dataset",
                                    "private": True, "exist_ok": True}
    upload = calls["upload_folder"]
    assert upload["folder_path"] == str(folder) and upload["repo_id"] == "me/data"
    assert upload["repo_type"] == "dataset"
    out = capsys.readouterr()
    assert "https://huggingface.co/datasets/me/data" in out.out.replace("\n", "")
    assert TOKEN not in out.out + out.err
    assert 'load_dataset("me/data"' in (folder / "README.md").read_text()
    for path in [*run.rglob("*"), *folder.rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_failed_upload_is_one_line_without_the_token(run, tmp_path, capsys, monkeypatch):
    _fake_hub(monkeypatch, fail=True)
    assert main(["export", str(run), "--format", "hf", "-o", str(tmp_path / "hf"),
                 "--push-to-hub", "me/data"]) == 2
    err = capsys.readouterr().err
    assert "uploading to me/data failed" in err and "401" in err
    assert TOKEN not in err and "***" in err
