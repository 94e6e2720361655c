"""A run as a Hugging Face Hub data set: Parquet shards and a dataset card that says how
the data was made (``selfinstruct export RUN --format hf -o DIR [--push-to-hub REPO]``).

::

    DIR/
      README.md                               the dataset card: YAML metadata, then the model
                                              and its sha256, the recipe, every parameter,
                                              the filter funnel and the command that makes
                                              the same data again
      data/train-00000-of-00001.parquet       id, instruction, input, output, is_classification
                                              (and quality_<name> columns with --tags,
                                              :mod:`selfinstruct.rules.tags`)

``datasets.load_dataset(DIR)`` reads it as it is (the card's ``configs`` names the files),
and so does the Hub once the folder is uploaded. The rows are the Parquet export's, in the
Alpaca export's order. Everything on the card comes from the run directory: its
``manifest.json`` (model, parameters, seed, versions), and its records, counted by
:func:`selfinstruct.analysis.funnel.compute_funnel`.

The license in the metadata is the seed tasks' license, since the data is derived from
them: Apache-2.0 for the project's own seeds and for the original Self-Instruct seed file
(recognised by its sha256), "other" for any other ``--seeds`` file unless ``--license``
says. The model's own terms may apply too; the card says so.

:func:`push_to_hub` uploads the folder with ``huggingface_hub`` (the ``[hub]`` extra),
with a token read from ``HF_TOKEN`` only: it is passed to the client and nowhere else, and
scrubbed from any error message. The upload has not been tested against the real Hub
(the project's machines have no network); a unit test checks what is passed to
``HfApi``.

What it leaves out: a test split (Self-Instruct data has none), and the ``dataset_info``
block (the Hub computes it from the Parquet files).
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import fields
from pathlib import Path

from selfinstruct import __version__
from selfinstruct.errors import UserError
from selfinstruct.files import (
    atomic_write_text,
    check_output_folder,
    file_sha256,
    mark_output_folder,
)
from selfinstruct.records import Task

HUB_HINT = "pip install 'selfinstruct[hub]'"
TOKEN_ENV = "HF_TOKEN"
ROWS_PER_SHARD = 200_000  # about 100 MB of Self-Instruct rows
PAPER = "https://aclanthology.org/2023.acl-long.754/"

# seed files whose license is known, by sha256 (a file given with --seeds is hashed at export)
KNOWN_SEED_FILES = {
    "7779004fa198fdf27cf70a159363879d8a26c53329e11b436af17b3941875f48":
        ("apache-2.0", "the original Self-Instruct seed tasks (yizhongw/self-instruct)"),
}

# the Hub's size_categories, by upper bound
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
          (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"),
          (1_000_000_000, "100M<n<1B"))


def size_category(rows: int) -> str:
    for bound, label in _SIZES:
        if rows < bound:
            return label
    return "n>1B"


def shard_names(count: int) -> list[str]:
    return [f"data/train-{k:05d}-of-{count:05d}.parquet" for k in range(count)]


def shard_tasks(tasks: list[Task], rows_per_shard: int = ROWS_PER_SHARD) -> list[list[Task]]:
    """Tasks in order, split into groups of at most ``rows_per_shard`` instances (a task is
    never split; one larger than that is a shard of its own). Always at least one group."""
    shards: list[list[Task]] = [[]]
    rows = 0
    for task in tasks:
        if shards[-1] and rows + len(task.instances) > rows_per_shard:
            shards.append([])
            rows = 0
        shards[-1].append(task)
        rows += len(task.instances)
    return shards


# --- the license -----------------------------------------------------------------------

def seeds_license(manifest: dict, override: str | None = None) -> tuple[str, str]:
    """(license id for the card's metadata, where it comes from)."""
    if override:
        return override, "given with --license at export"
    source = (manifest.get("config") or {}).get("seeds")
    if not source:
        return "apache-2.0", "the seed tasks bundled with selfinstruct (Apache-2.0)"
    path = Path(source)
    if path.is_file():
        digest = file_sha256(path)
        if digest in KNOWN_SEED_FILES:
            license_id, what = KNOWN_SEED_FILES[digest]
            return license_id, f"{what}, recognised by its sha256"
    return "other", (f"the seed tasks of {path.name}, whose license selfinstruct does not "
                     "know; give it with --license at export")


# --- the command that makes the same data ----------------------------------------------

def _flag_value(value) -> str:
    return shlex.quote(repr(value) if isinstance(value, float) else str(value))


def reproduce_command(config: dict, out: str) -> str:
    """``selfinstruct run --out OUT --model M --seed S --num-instructions N --recipe R``
    and every option whose value differs from its default, as the CLI spells it. The
    recipe is always spelled out: its default has changed once and may again."""
    from selfinstruct.cli.options import OPTIONS, REPEATABLE
    from selfinstruct.run.config import RunConfig

    defaults = {f.name: f.default for f in fields(RunConfig)}
    always = ("model", "seed", "num_instructions", "recipe")
    parts = ["selfinstruct", "run", "--out", shlex.quote(out)]
    names = list(always) + [name for name, *_ in OPTIONS if name not in always]
    kinds = {name: kind for name, _, kind, _ in OPTIONS}
    for name in names:
        if name not in config:
            continue
        value = config[name]
        if name not in always and value == defaults.get(name):
            continue
        flag = "--" + name.replace("_", "-")
        if kinds.get(name) is bool:
            parts.append(flag if value else "--no-" + flag[2:])
        elif value is None:
            continue  # an option the CLI cannot set back to None; its default is None
        elif name in REPEATABLE:
            for item in str(value).split(","):
                parts += [flag, _flag_value(item)]
        else:
            parts += [flag, _flag_value(value)]
    return " ".join(parts)


# --- the card --------------------------------------------------------------------------

def _yaml_list(key: str, values: list[str]) -> list[str]:
    return [f"{key}:"] + [f"- {json.dumps(v)}" for v in values]


def card_metadata(license_id: str, rows: int, pretty_name: str) -> str:
    lines = ["---", f"license: {json.dumps(license_id)}"]
    lines += _yaml_list("language", ["en"])
    lines += _yaml_list("task_categories", ["text-generation"])
    lines += _yaml_list("size_categories", [size_category(rows)])
    lines += _yaml_list("tags", ["self-instruct", "synthetic", "instruction-tuning"])
    lines += [f"pretty_name: {json.dumps(pretty_name)}",
              "configs:",
              "- config_name: default",
              "  data_files:",
              "  - split: train",
              '    path: "data/train-*.parquet"',
              "---"]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("\n", " ")


def _counts(by_reason: dict[str, int], indent: str = "&nbsp;&nbsp;") -> list[str]:
    return [f"| {indent}{reason} | {count:,} |" for reason, count in by_reason.items()]


def _funnel_section(funnel) -> list[str]:
    rows = ["| step | count |", "|---|---:|",
            f"| candidate instructions generated | {funnel.generated:,} |",
            f"| rejected | {funnel.rejected:,} |"]
    rows += _counts(funnel.rejected_by_reason)
    rows += [f"| instructions kept | {funnel.kept:,} |",
             (f"| &nbsp;&nbsp;classification / other / not classified | "
             f"{funnel.classification:,} / {funnel.non_classification:,} / "
             f"{funnel.unclassified:,} |"),
             f"| instructions with generated instances | {funnel.with_instances:,} |",
             f"| instances parsed | {funnel.instances_parsed:,} |"]
    if funnel.parser_drops_by_reason:
        rows.append("| dropped by the parser | |")
        rows += _counts(funnel.parser_drops_by_reason)
    if funnel.instance_drops_by_reason:
        rows.append("| instances dropped by the filters | |")
        rows += _counts(funnel.instance_drops_by_reason)
    if funnel.task_drops_by_reason:
        rows.append("| tasks dropped whole | |")
        rows += _counts(funnel.task_drops_by_reason)
    rows += [f"| **final tasks** | **{funnel.final_tasks:,}** |",
             f"| **final instances** | **{funnel.final_instances:,}** |"]
    if funnel.failed_requests_by_stage:
        rows.append("| requests that failed for good | |")
        rows += _counts(funnel.failed_requests_by_stage)
    return rows


def _model_lines(model: dict) -> list[str]:
    lines = [f"- **model**: `{model.get('name', '?')}` ({model.get('backend', '?')})"]
    if model.get("path"):
        lines.append(f"- **model file**: `{Path(model['path']).name}`")
    if model.get("sha256"):
        lines.append(f"- **model sha256**: `{model['sha256']}`")
    if model.get("base_url"):
        lines.append(f"- **server**: `{model['base_url']}`")
    if model.get("lora"):
        lines.append(f"- **LoRA adapter**: `{Path(model['lora']).name}`, sha256 "
                     f"`{model.get('lora_sha256', '?')}`")
    return lines


_TAG_COLUMNS = (
    ("max_rouge_l", "float",
     "the instruction's highest ROUGE-L against the pool when kept; null for seed tasks"),
    ("nearest_instruction", "string", "the pool instruction it was nearest to"),
    ("classification_margin", "float",
     "the calibrated classifier's score; null under the paper's rule"),
    ("classification_threshold", "float", "the threshold that score was compared with"),
    ("answer_agreement", "float", ("the curated recipe: the output's mean ROUGE-L to the "
                                   "model's other sampled answers; null otherwise")),
    ("ifd", "float", ("the curated recipe: the output's loss after its prompt over its loss "
                      "alone; null otherwise")),
    ("echo", "bool", "the output is 1 or 2 words, all of them in the instruction"),
    ("instruction_words", "int", "words in the instruction"),
    ("input_words", "int", "words in the input"),
    ("output_words", "int", "words in the output"),
)


def dataset_card(records, tasks: list[Task], *, license_id: str, license_note: str,
                 reviewed: bool = False, load_name: str = "DIR", tags: bool = False) -> str:
    """The README.md of the data set: metadata, then how the data was made.
    ``records``: a :class:`selfinstruct.run.records_reader.RunRecords`; ``load_name``:
    what ``load_dataset`` is given in the card's example (the repository id, or a folder);
    ``tags``: the rows carry the quality columns (``export --tags``)."""
    from selfinstruct.run.config import RunConfig, with_former_defaults

    manifest = records.manifest
    config = with_former_defaults(manifest.get("config") or {})
    model = manifest.get("model") or {"name": config.get("model", "?")}
    rows = sum(len(t.instances) for t in tasks)
    classification = sum(1 for t in tasks if t.is_classification)
    name = f"Self-Instruct data from {model.get('name', '?')}"
    run_name = records.path.resolve().name
    defaults = RunConfig().as_dict()
    funnel = records.funnel()

    out = [card_metadata(license_id, rows, name), f"# {name}", ""]
    out += [(f"Instruction data made with [Self-Instruct]({PAPER}) by "
            f"[selfinstruct](https://pypi.org/project/selfinstruct/) "
            f"{manifest.get('selfinstruct_version', __version__)}: **{rows:,} instances of "
            f"{len(tasks):,} tasks** ({classification:,} of them classification tasks), every "
            f"instruction, input and output written by the model `{model.get('name', '?')}` "
            "from a few seed tasks."), ""]
    status = manifest.get("status")
    if status and status != "finished":
        out += [(f"> The run's status is `{status}`: it did not reach the number of "
                "instructions it asked for (see the funnel)."), ""]
    if reviewed:
        out += [("> People reviewed this data with `selfinstruct review`: rejected tasks were "
                "dropped and edits applied, so it differs from what the command below "
                "makes."), ""]
    out += ["## Columns", "", "| column | type | what |", "|---|---|---|",
            "| id | string | the task's id in the run: bootstrap request and candidate |",
            "| instruction | string | the task |",
            "| input | string | its input; empty when the task needs none |",
            "| output | string | the answer |",
            ("| is_classification | bool | the model's own answer to \"is it a classification "
            "task?\" |")]
    if tags:
        from selfinstruct.rules.tags import COLUMN_PREFIX

        out += [f"| {COLUMN_PREFIX}{name} | {kind} | {what} |"
                for name, kind, what in _TAG_COLUMNS]
    out += ["",
            "```python", "from datasets import load_dataset", "",
            f'data = load_dataset({json.dumps(load_name)}, split="train")', "```", ""]
    out += ["## How it was made", ""]
    out += _model_lines(model)
    seeds = manifest.get("seeds") or {}
    out += [f"- **recipe**: `{config.get('recipe', defaults['recipe'])}`",
            f"- **seed**: {manifest.get('seed', config.get('seed'))}",
            (f"- **seed tasks**: {seeds.get('source', 'bundled')} ({seeds.get('count', '?')} "
            f"tasks); license: {license_note}"),
            f"- **prompt templates**: {manifest.get('prompts', 'bundled')}",
            (f"- **selfinstruct** {manifest.get('selfinstruct_version', '?')}, Python "
            f"{manifest.get('python', '?')}"),
            (f"- **started** {manifest.get('started_at', '?')}, **finished** "
            f"{manifest.get('finished_at', '?')}, status `{status or '?'}`")]
    usage = manifest.get("usage") or {}
    if usage:
        requests = sum(u.get("requests", 0) for u in usage.values())
        tokens_in = sum(u.get("prompt_tokens", 0) for u in usage.values())
        tokens_out = sum(u.get("completion_tokens", 0) for u in usage.values())
        out.append(f"- **last session**: {requests:,} requests, {tokens_in:,} tokens in, "
                   f"{tokens_out:,} tokens out")
    out += ["", "### Parameters", "",
            ("Every parameter of the run (`manifest.json`); **bold** ones differ from the "
            "default, which is the original Self-Instruct code's setting."), "",
            "| parameter | value | default |", "|---|---|---|"]
    for key, value in config.items():
        default = defaults.get(key, "")
        shown = f"**{_cell(value)}**" if key in defaults and value != default else _cell(value)
        out.append(f"| {key} | {shown} | {_cell(default)} |")
    out += ["", "## Filter funnel", "",
            ("Counted from the run directory's records: every candidate the model wrote, and "
            "why each dropped one was dropped (`rejects.jsonl`, `instance_rejects.jsonl`)."),
            ""]
    out += _funnel_section(funnel)
    command = reproduce_command(config, f"runs/{run_name}")
    version = manifest.get("selfinstruct_version", __version__)
    out += ["", "## Reproduce", "",
            "```bash", f"pip install 'selfinstruct=={version}'", command,
            (f"selfinstruct export runs/{run_name} --format hf "
             f"-o {shlex.quote(run_name)}-hf{' --tags' if tags else ''}"),
            "```", "",
            ("With the same model file (check its sha256 above) the embedded backend writes the "
            "same bytes for the same seed. A server's answers depend on the server. Paths in "
            "the command are those of the machine that made the data."), ""]
    out += ["## License", "",
            (f"`{license_id}`: {license_note}. The text itself was written by the model "
            f"`{model.get('name', '?')}`, whose terms of use may also apply."), ""]
    return "\n".join(out)


# --- writing and uploading -------------------------------------------------------------

def write_hub_dataset(run_dir: str | Path, tasks: list[Task], out_dir: str | Path, *,
                      reviewed: bool = False, license: str | None = None,
                      repo_id: str | None = None,
                      rows_per_shard: int = ROWS_PER_SHARD, tags: bool = False) -> Path:
    """Write ``out_dir/data/*.parquet`` and ``out_dir/README.md`` for the run's ``tasks``;
    ``repo_id``: the Hub repository it is meant for, named in the card's example; ``tags``:
    with the quality columns (:mod:`selfinstruct.rules.tags`), from the run's records."""
    from selfinstruct.run.records_reader import RunRecords
    from selfinstruct.stages.export import write_parquet

    records = RunRecords.load(run_dir)
    license_id, license_note = seeds_license(records.manifest, license)
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise UserError(f"--output: {target} exists and is not a directory (--format hf "
                        "writes a directory)")
    check_output_folder(target, "--output", legacy=hub_folder_before_markers)
    mark_output_folder(target, "export --format hf")
    run_tags = None
    if tags:
        from selfinstruct.rules.tags import RunTags

        run_tags = RunTags.from_records(records.instructions, records.classifications)
    groups = shard_tasks(tasks, rows_per_shard)
    names = shard_names(len(groups))
    for group, name in zip(groups, names):
        write_parquet(group, target / name, run_tags)
    for stale in (target / "data").glob("train-*-of-*.parquet"):  # an earlier export's
        if f"data/{stale.name}" not in names:
            stale.unlink()
    card = dataset_card(records, tasks, license_id=license_id, license_note=license_note,
                        reviewed=reviewed, load_name=repo_id or str(target), tags=tags)
    atomic_write_text(target / "README.md", card)
    return target


def hub_folder_before_markers(folder: Path) -> bool:
    """A folder an export from before the output marker wrote: README.md and data/ of
    shards, nothing else."""
    names = {entry.name for entry in folder.iterdir()}
    if not names <= {"README.md", "data"} or "data" not in names:
        return False
    return all(shard.name.startswith("train-") and shard.suffix == ".parquet"
               for shard in (folder / "data").iterdir())


def require_hub() -> None:
    import importlib.util

    if importlib.util.find_spec("huggingface_hub") is None:
        raise UserError(f"--push-to-hub needs huggingface_hub: {HUB_HINT}")


def hub_token(environ=None) -> str:
    """The Hub token from ``HF_TOKEN``; a one-line error without it."""
    token = (environ if environ is not None else os.environ).get(TOKEN_ENV, "").strip()
    if not token:
        raise UserError(f"--push-to-hub: no token; set the environment variable {TOKEN_ENV} "
                        "to a Hub write token (nothing was written)")
    return token


def push_to_hub(folder: str | Path, repo_id: str, token: str, *,
                private: bool = False) -> str:
    """Create the data set repository if needed and upload ``folder``; returns its URL."""
    require_hub()
    import huggingface_hub

    def scrub(text: str) -> str:
        return text.replace(token, "***") if token else text

    try:
        api = huggingface_hub.HfApi(token=token)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          commit_message=f"selfinstruct {__version__}: upload {Path(folder).name}")
    except Exception as exc:  # noqa: BLE001 - any client failure becomes one clear line
        raise UserError(scrub(f"--push-to-hub: uploading to {repo_id} failed "
                              f"({type(exc).__name__}: {exc})")) from None
    return f"https://huggingface.co/datasets/{repo_id}"
