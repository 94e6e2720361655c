"""A small, hand-made run directory for the report and review tests (no test here).

Six kept instructions (one of them carries a ``<script>`` tag, one is a question with no
verb-noun pair, one lost all its instances), three rejected candidates, and the records
every stage writes, in the run directory's formats. The counts are spelled out in
``EXPECTED`` so that the tests can check them by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

SCRIPT_TEXT = "<script>window.__pwned = 1</script> Summarize the text in one sentence."

KEPT = [
    # id, instruction, is_classification, instances [(input, output)]
    ("000000.00", "Write a poem about the sea.", False,
     [("", "Waves roll in\nand out again."), ("", "Blue water sings.")]),
    ("000000.01", "Classify the sentiment of the given review.", True,
     [("Review: I loved it.", "positive"), ("Review: Awful food.", "negative")]),
    ("000001.00", "Give me a list of three fruits.", False, [("", "apple, pear, plum")]),
    ("000001.01", SCRIPT_TEXT, False,
     [("<img src=x onerror=\"window.__pwned = 2\">The cat sat on the mat all day.",
       "A cat <b>sat</b>.")]),
    ("000002.00", "Translate the sentence into French.", False, []),
    ("000002.01", "What is the capital of France?", False, [("", "Paris")]),
]
REJECTS = [
    ("000000.02", "too_similar", "Write a poem about the ocean.",
     "ROUGE-L 0.8333 with: Write a poem about the sea."),
    ("000001.02", "too_similar", "Give me a list of three vegetables.", "ROUGE-L 0.8571 with: x"),
    ("000002.02", "blacklisted", "Draw a map of the town.", ""),
]
EXPECTED = {
    "generated": 9, "kept": 6, "rejected_by_reason": {"too_similar": 2, "blacklisted": 1},
    "classification": 1, "non_classification": 5, "with_instances": 6,
    "final_tasks": 5, "final_instances": 7,
}

MANIFEST = {
    "format_version": 1,
    "started_at": "2026-01-01T00:00:00+00:00",
    "finished_at": "2026-01-01T00:03:00+00:00",
    "selfinstruct_version": "0.1.0",
    "python": "3.11.7",
    "config": {"num_instructions": 6, "seed": 3, "classification_only": False, "model": "smollm2",
               "base_url": None, "seeds": None, "prompts": None, "similarity_threshold": 0.7,
               "max_instances_per_task": 5},
    "seed": 3,
    "seeds": {"source": "bundled", "count": 175},
    "prompts": "bundled",
    "resumed": 0,
    "usage": {
        "bootstrap": {"requests": 3, "cached": 0, "failed": 0, "retries": 0,
                      "prompt_tokens": 400, "completion_tokens": 300,
                      "generation_seconds": 20.5},
        "classify": {"requests": 6, "cached": 0, "failed": 0, "retries": 0,
                     "prompt_tokens": 4000, "completion_tokens": 12, "generation_seconds": 3.0},
    },
    "status": "finished",
    "model": {"name": "smollm2", "backend": "llama.cpp", "path": "/models/smollm2.gguf",
              "sha256": "ab" * 32},
    "wall_seconds": 180.0,
}


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_run(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(MANIFEST, indent=2))
    instructions, labels, instances, tasks, instance_rejects = [], [], [], [], []
    for position, (rid, text, clf, pairs) in enumerate(KEPT):
        instructions.append({
            "id": rid, "instruction": text, "request_index": int(rid[:6]),
            "position": int(rid[-2:]),
            "most_similar": [["Write a haiku about the first snowfall of winter.", 0.4],
                             [f"Neighbour {position} <i>tag</i>", 0.25]],
            "avg_similarity": 0.12,
            "raw_completion": f" {text}\n10. Another idea </pre><script>x()</script>",
        })
        labels.append({"id": rid, "instruction": text, "is_classification": clf,
                       "raw_answer": " Yes" if clf else " No"})
        parsed = [{"input": i, "output": o} for i, o in pairs]
        dropped = [{"instance": None, "reason": "truncated"}] if rid == "000000.00" else []
        instances.append({"id": rid, "instruction": text, "is_classification": clf,
                          "instances": parsed, "dropped": dropped, "finish_reason": "stop",
                          "raw_completion": "Input: ...\nOutput: ..."})
        if pairs:
            tasks.append({"id": rid, "instruction": text, "instances": parsed,
                          "is_classification": clf, "name": None})
        else:
            instance_rejects.append({"id": rid, "reason": "no_valid_instances", "task": True,
                                     "instruction": text})
    instance_rejects.append({"id": "000000.01", "reason": "duplicate",
                             "input": "Review: I loved it.", "output": "positive"})
    _write(folder / "instructions.jsonl", instructions)
    _write(folder / "rejects.jsonl", [{"id": rid, "stage": "bootstrap", "reason": reason,
                                       "text": text, "detail": detail}
                                      for rid, reason, text, detail in REJECTS])
    _write(folder / "classifications.jsonl", labels)
    _write(folder / "instances.jsonl", instances)
    _write(folder / "tasks.jsonl", tasks)
    _write(folder / "instance_rejects.jsonl", instance_rejects)
    return folder


def make_predictions(folder: Path) -> tuple[list[str], Path]:
    """Two prediction files (2 instances each) and a judge's ratings.jsonl for them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    items = [("user_oriented_task_0", "Rewrite the sentence.", "It is good."),
             ("user_oriented_task_1", "Name a colour.", "")]
    for model, prefix in (("alpha-model", "Alpha"), ("beta-model", "Beta <script>b()</script>")):
        path = folder / f"{model}_predictions.jsonl"
        _write(path, [{"id": iid, "instruction": ins, "input": inp,
                       "response": f"{prefix} answer to {iid}", "target": ""}
                      for iid, ins, inp in items])
        paths.append(str(path))
    judge = folder / "ratings.jsonl"
    _write(judge, [
        {"format_version": 1, "model": model, "instance_id": iid, "rater": "judge:smollm2",
         "rating": rating, "reasoning": "", "parse_error": None, "judge_output": rating,
         "rated_at": "2026-01-01T00:00:00+00:00"}
        for model, iid, rating in [("alpha-model", "user_oriented_task_0", "A"),
                                   ("alpha-model", "user_oriented_task_1", "B"),
                                   ("beta-model", "user_oriented_task_0", "A"),
                                   ("beta-model", "user_oriented_task_1", "D")]])
    return paths, judge
