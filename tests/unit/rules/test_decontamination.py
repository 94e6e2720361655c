"""Decontamination: evaluation instructions and instances kept out of the generated data."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from paths import SHARED

from selfinstruct.backends.base import Completion
from selfinstruct.backends.fake import FakeBackend
from selfinstruct.cli import main
from selfinstruct.errors import UserError
from selfinstruct.loop import LoopOptions, ServedModel, run_config
from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Instance
from selfinstruct.rules import decontamination
from selfinstruct.rules.decontamination import (
    Decontaminator,
    EvalTask,
    load_decontaminator,
    read_eval_set,
)
from selfinstruct.run.config import RunConfig
from selfinstruct.run.context import RunContext, open_context
from selfinstruct.run.rundir import RunDir
from selfinstruct.seeds import load_seeds
from selfinstruct.stages.bootstrap import bootstrap

SUPERNI_FILE = SHARED / "data" / "superni-test" / "superni_test_en.jsonl"
USER_ORIENTED_FILE = SHARED / "data" / "self-instruct-original" / "user_oriented_instructions.jsonl"

PASSAGE = ("The festival drew to a close on Sunday after screening one hundred and thirty four "
           "new features across the city")  # 20 tokens
LONG_OUTPUT = ("A reference output that is long enough to hold one thirteen word window of "
               "text for the test")


def superni_line(task, definition, input_, outputs):
    return {"task": task, "category": "Title Generation", "definition": definition,
            "id": f"{task}-{len(input_)}", "input": input_, "outputs": outputs}


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def eval_files(tmp_path):
    superni = write_jsonl(tmp_path / "superni.jsonl", [
        superni_line("task1_title", "Generate an appropriate title for the given text.",
                     PASSAGE, ["Film festival admissions up"]),
        superni_line("task1_title", "Generate an appropriate title for the given text.",
                     "Short input", [LONG_OUTPUT]),
        superni_line("task2_map", "Draw a map of the town and all of its roads.", "x", ["y"]),
    ])
    user = write_jsonl(tmp_path / "user.jsonl", [
        {"id": "user_oriented_task_0", "motivation_app": "Grammarly",
         "instruction": "Rewrite the sentence to make it concise and clear.",
         "instances": [{"input": "If you have any questions about my rate, let me know.",
                        "output": "Questions about my rate? Let me know."}]},
    ])
    return superni, user


# -- reading ------------------------------------------------------------------------------


def test_both_formats_are_read_and_superni_lines_grouped_by_task(eval_files):
    superni, user = eval_files
    tasks = read_eval_set(superni)
    assert [(t.name, len(t.texts)) for t in tasks] == [("task1_title", 4), ("task2_map", 2)]
    assert tasks[0].instruction == "Generate an appropriate title for the given text."
    assert tasks[0].texts[:2] == (PASSAGE, "Film festival admissions up")
    [task] = read_eval_set(user)
    assert task.name == "user_oriented_task_0"
    assert task.instruction.startswith("Rewrite the sentence")
    assert task.texts == ("If you have any questions about my rate, let me know.",
                          "Questions about my rate? Let me know.")


def test_a_line_of_neither_format_names_the_file_and_line(tmp_path, eval_files):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(superni_line("t", "d", "i", ["o"])) + "\n\n"
                   + json.dumps({"prompt": "x", "completion": "y"}) + "\n")
    with pytest.raises(UserError, match=rf"^{bad}:3: not an evaluation set line: .*"
                                        r"\(this one has: completion, prompt\)$"):
        read_eval_set(bad)
    bad.write_text(json.dumps({"instruction": "x", "instances": [1]}) + "\n")
    with pytest.raises(UserError, match=rf"^{bad}:1: field 'instances\[0\]' must be an object"):
        read_eval_set(bad)
    bad.write_text("\n")
    with pytest.raises(UserError, match="holds no evaluation tasks"):
        read_eval_set(bad)
    with pytest.raises(UserError, match="^--decontaminate: file not found: "):
        load_decontaminator([str(tmp_path / "missing.jsonl")])


def test_the_sets_are_read_once_per_process_until_a_file_changes(eval_files):
    superni, user = eval_files
    first = load_decontaminator([str(superni), str(user)])
    assert load_decontaminator([str(superni), str(user)]) is first
    assert [t.name for t in first.tasks] == ["task1_title", "task2_map", "user_oriented_task_0"]
    assert load_decontaminator([]) is None
    write_jsonl(superni, [superni_line("task9", "Another definition of a task.", "a", ["b"])])
    assert [t.name for t in load_decontaminator([str(superni)]).tasks] == ["task9"]


# -- instructions -------------------------------------------------------------------------


def test_an_instruction_too_close_to_an_evaluation_instruction_is_contaminated(eval_files):
    found = load_decontaminator([str(p) for p in eval_files])
    # 8 of 10 tokens in order: LCS 8, F = 2*8/(8+10) = 0.889
    reason, detail = found.instruction_hit(
        "Generate an appropriate title for the given news article text", 0.7)
    assert reason == "contaminated"
    assert detail == ("ROUGE-L 0.8889 with evaluation task task1_title (superni.jsonl): "
                      "Generate an appropriate title for the given text.")
    assert found.instruction_hit("Write a haiku about autumn leaves.", 0.7) is None
    # above the threshold, as the novelty rule: F = 0.889 is not above 0.9
    assert found.instruction_hit(
        "Generate an appropriate title for the given news article text", 0.9) is None


# -- instances ----------------------------------------------------------------------------


def test_an_instance_sharing_a_13_gram_is_contaminated(eval_files):
    found = load_decontaminator([str(p) for p in eval_files])
    words = PASSAGE.split()
    thirteen = "Headline: " + " ".join(words[3:16]).upper() + "!"  # case and punctuation
    reason, detail = found.instance_hit(Instance(thirteen, "A title"))
    assert reason == "contaminated"
    assert detail == ('input shares the 13-gram "to a close on sunday after screening one '
                      'hundred and thirty four new" with evaluation task task1_title '
                      '(superni.jsonl)')
    twelve = " ".join(words[3:15])
    assert found.instance_hit(Instance(twelve, twelve + " and more")) is None
    # a reference output counts as much as an input
    hit = found.instance_hit(Instance("", "So: that is long enough to hold one thirteen "
                                          "word window of text for you"))
    assert hit is not None and hit[1].startswith("output shares the 13-gram")


def test_ngrams_never_span_two_evaluation_texts():
    tasks = [EvalTask("a", "x", ("one two three four five six seven",
                                 "eight nine ten eleven twelve thirteen fourteen"), "f")]
    found = Decontaminator(tasks)
    joined = "one two three four five six seven eight nine ten eleven twelve thirteen"
    assert found.instance_hit(Instance(joined, "")) is None


def test_hash_collisions_are_confirmed_on_the_tokens(monkeypatch):
    # a multiplier of 0 makes every window's hash its last token: collisions everywhere
    monkeypatch.setattr(decontamination, "_MULTIPLIER", np.uint64(0))
    words = [f"w{k}" for k in range(30)]
    found = Decontaminator([EvalTask("t", "x", (" ".join(words),), "f")])
    other = " ".join(["zz"] * 12 + [words[20]])  # same last token, different 13-gram
    assert found.instance_hit(Instance(other, "")) is None
    assert found.instance_hit(Instance(" ".join(words[5:18]), ""))[0] == "contaminated"


# -- in the stages -----------------------------------------------------------------------


def test_bootstrap_rejects_contaminated_candidates_after_the_rules(tmp_path, eval_files):
    seeds = load_seeds(None)
    seed = seeds[0].instruction
    user = write_jsonl(tmp_path / "seed-eval.jsonl", [
        {"id": "u1", "instruction": seed, "instances": [{"input": "", "output": "x"}]}])
    completion = (" Generate an appropriate title for the given news article text\n"
                  "10. Write a haiku about autumn leaves falling in the park\n"
                  "11. Draw a map of the town and all of its roads\n"
                  f"12. {seed}")
    run = RunDir(tmp_path / "run")
    run.create()
    config = RunConfig(num_instructions=5, max_requests=1,
                       decontaminate=f"{eval_files[0]},{user}")
    ctx = RunContext(run=run, config=config, seeds=seeds, templates=PromptTemplates.load(),
                     _backend=FakeBackend(lambda _: Completion(completion, "stop", 10, 5)))
    try:
        result = bootstrap(ctx)
    finally:
        ctx.close()
    assert result.kept == 1
    assert [r["instruction"] for r in run.instructions.recover()] == [
        "Write a haiku about autumn leaves falling in the park"]
    rejects = {r["id"]: (r["reason"], r["detail"]) for r in run.rejects.recover()}
    assert rejects["000000.00"][0] == "contaminated"
    assert "task1_title" in rejects["000000.00"][1]
    assert rejects["000000.02"] == ("blacklisted", "")  # the paper's rule comes first
    # a seed instruction that is also an evaluation one: contaminated, before too_similar
    assert rejects["000000.03"][0] == "contaminated"
    assert rejects["000000.03"][1].startswith("ROUGE-L 1.0000 with evaluation task u1")


def test_a_bad_evaluation_file_fails_before_the_run_directory_is_written(tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "?"}])
    with pytest.raises(UserError, match=rf"^{bad}:1: not an evaluation set line"):
        open_context(tmp_path / "run", RunConfig(decontaminate=str(bad)))
    assert not (tmp_path / "run").exists()
    assert main(["run", "--out", str(tmp_path / "run2"), "--decontaminate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}:1: not an evaluation set line" in err[0]
    assert not (tmp_path / "run2").exists()


def test_loop_decontaminates_against_its_own_evaluation_sets():
    served = ServedModel("smollm2")
    options = LoopOptions(out="o", superni="s.jsonl", user_oriented="u.jsonl",
                          run_overrides={"decontaminate": "mine.jsonl,s.jsonl"})
    assert run_config(options, 1, served).decontaminate == "mine.jsonl,s.jsonl,u.jsonl"
    assert run_config(LoopOptions(out="o", superni="s.jsonl"), 1,
                      served).decontamination_files == ["s.jsonl"]
    assert run_config(LoopOptions(out="o"), 1, served).decontaminate is None
    off = LoopOptions(out="o", superni="s.jsonl", decontaminate_eval=False)
    assert run_config(off, 1, served).decontaminate is None


def test_loop_flag_turns_it_off():
    import argparse

    from selfinstruct.cli import loop as loop_cli

    parser = argparse.ArgumentParser()
    loop_cli.register(parser.add_subparsers())
    assert parser.parse_args(["loop", "--out", "o"]).decontaminate_eval is True
    assert parser.parse_args(["loop", "--out", "o",
                              "--no-decontaminate-eval"]).decontaminate_eval is False


# -- the real evaluation sets -----------------------------------------------------------


def test_the_real_superni_and_user_oriented_files():
    if not SUPERNI_FILE.is_file() or not USER_ORIENTED_FILE.is_file():
        pytest.skip(f"the shared evaluation data is not there: {SHARED / 'data'}")
    started = time.perf_counter()
    found = Decontaminator(read_eval_set(SUPERNI_FILE) + read_eval_set(USER_ORIENTED_FILE))
    found.build()
    seconds = time.perf_counter() - started
    assert len(found.tasks) == 119 + 252
    assert seconds < 30, seconds  # about a second on an idle core
    first = json.loads(SUPERNI_FILE.open(encoding="utf-8").readline())
    assert found.instruction_hit(first["definition"], 0.7)[1].startswith(
        f"ROUGE-L 1.0000 with evaluation task {first['task']}")
    words = first["input"].split()
    hit = found.instance_hit(Instance(" ".join(words[10:40]), "A title."))
    assert hit is not None and first["task"] in hit[1]
    # the project's own seed tasks are not SuperNI or user-oriented tasks
    seeds = load_seeds(None)
    flagged = [s.instruction for s in seeds if found.instruction_hit(s.instruction, 0.7)]
    assert len(flagged) <= 3, flagged
