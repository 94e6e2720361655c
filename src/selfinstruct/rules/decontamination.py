"""Keep evaluation sets out of the generated data (``--decontaminate FILE``).

A model that writes its own training data may write an evaluation task, or one of its
instances, and the fine-tuned model's score on that evaluation would then measure recall,
not skill. Two checks, against evaluation sets read from JSONL:

- **instructions** (bootstrap stage, after the paper's rules and before the novelty test):
  a candidate whose ROUGE-L F-measure against any evaluation instruction (a SuperNI task's
  definition, a user-oriented instruction) is above the run's ``similarity_threshold`` is
  rejected as ``contaminated``. The same exact index as the novelty filter
  (:class:`selfinstruct.novelty.index.NoveltyIndex`, ``rouge_score``'s tokenizer).
- **instances** (postprocess): an instance whose input or output shares a 13-gram of
  lowercased word tokens (``[a-z0-9]+`` runs) with any evaluation input or reference output
  is dropped as ``contaminated``: the n-gram overlap test of the GPT-3 paper, with its 13.

Formats, detected line by line from the fields:

- SuperNI (``superni_test_en.jsonl``): one instance per line with ``task``,
  ``definition``, ``input``, ``outputs`` (a list of references); lines of one task are
  grouped under its name.
- user-oriented (``user_oriented_instructions.jsonl``): one task per line with
  ``instruction`` and ``instances`` (``[{"input", "output"}]``), named by ``id``.

Anything else is a :class:`UserError` naming the file and line.

Cost: the 13-grams are hashed with numpy (a polynomial hash of token ids over each
window), sorted once, and looked up with ``searchsorted``; a hit is confirmed on the
tokens themselves, so a hash collision cannot drop an instance. Loading the 11,810 SuperNI
instances and building both indexes takes about a second; :func:`load_decontaminator`
keeps the result for the life of the process, keyed by each file's path, size and mtime.

Deliberately left out: fuzzy instance matching (paraphrases), other n-gram lengths, and
non-ASCII words (the tokenizer keeps ``[a-z0-9]`` runs, as ROUGE does).
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfinstruct.errors import UserError
from selfinstruct.evaluation.jsonl import field, read_jsonl
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.records import Instance

__all__ = ["NGRAM", "REASON", "Decontaminator", "EvalTask", "contaminated_instruction",
           "load_decontaminator",
           "read_eval_set", "word_tokens"]

NGRAM = 13
REASON = "contaminated"
OPTION = "--decontaminate"

_WORD = re.compile(r"[a-z0-9]+")
_SUPERNI_FIELDS = ("task", "definition", "input", "outputs")
_USER_ORIENTED_FIELDS = ("instruction", "instances")
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: the window hash below is a bijection per step


def word_tokens(text: str) -> list[str]:
    """Lowercased word tokens: the maximal ``[a-z0-9]+`` runs of ``text.lower()``."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class EvalTask:
    """One evaluation task: its name, its instruction, and every input and reference."""

    name: str
    instruction: str
    texts: tuple[str, ...]
    source: str  # the file it came from


def _strings(where: str, record: dict, name: str) -> list[str]:
    values = field(where, record, name, list)
    if any(not isinstance(v, str) for v in values):
        raise UserError(f"{where}: field '{name}' must be a list of strings")
    return values


def read_eval_set(path: str | Path) -> list[EvalTask]:
    """The tasks of one evaluation file, in file order (format detected per line)."""
    names: list[str] = []
    instructions: dict[str, str] = {}
    texts: dict[str, list[str]] = {}
    for where, record in read_jsonl(path, OPTION):
        if all(k in record for k in _SUPERNI_FIELDS):
            name = field(where, record, "task")
            instruction = field(where, record, "definition")
            found = [field(where, record, "input"), *_strings(where, record, "outputs")]
        elif all(k in record for k in _USER_ORIENTED_FIELDS):
            name = field(where, record, "id", default=where.rsplit(":", 1)[-1])
            instruction = field(where, record, "instruction")
            found = []
            for k, instance in enumerate(field(where, record, "instances", list)):
                if not isinstance(instance, dict):
                    raise UserError(f"{where}: field 'instances[{k}]' must be an object")
                found += [field(where, instance, "input", default=""),
                          field(where, instance, "output", default="")]
        else:
            keys = ", ".join(sorted(record)[:8]) or "none"
            raise UserError(
                f"{where}: not an evaluation set line: a SuperNI line has the fields "
                f"{', '.join(_SUPERNI_FIELDS)}; a user-oriented one has "
                f"{', '.join(_USER_ORIENTED_FIELDS)} (this one has: {keys})")
        if name not in texts:
            names.append(name)
            instructions[name] = instruction
            texts[name] = []
        texts[name] += found
    if not names:
        raise UserError(f"{OPTION}: {path} holds no evaluation tasks")
    return [EvalTask(n, instructions[n], tuple(texts[n]), str(path)) for n in names]


def _window_hashes(ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Hash of the ``NGRAM`` token ids starting at each of ``starts`` (uint64, wrapping)."""
    h = np.zeros(len(starts), dtype=np.uint64)
    for k in range(NGRAM):
        h = h * _MULTIPLIER + ids[starts + k].astype(np.uint64)
    return h


class _NgramIndex:
    """Every ``NGRAM``-gram of a set of texts, each with the text it came from."""

    def __init__(self, texts: Sequence[str]) -> None:
        # a new token gets the next id, in C: defaultdict calls the counter on a miss
        vocab: defaultdict[str, int] = defaultdict(itertools.count().__next__)
        chunks, starts, owners = [], [], []
        offset = 0
        for owner, text in enumerate(texts):
            tokens = word_tokens(text)
            if len(tokens) < NGRAM:
                continue
            chunks.append(np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int32,
                                      count=len(tokens)))
            count = len(tokens) - NGRAM + 1
            starts.append(np.arange(offset, offset + count, dtype=np.int64))
            owners.append(np.full(count, owner, dtype=np.int32))
            offset += len(tokens)
        self.vocab: dict[str, int] = dict(vocab)
        self.ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)
        starts_all = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        owners_all = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int32)
        hashes = _window_hashes(self.ids, starts_all)
        order = np.argsort(hashes, kind="stable")  # equal hashes stay in text order
        self.hashes = hashes[order]
        self.starts = starts_all[order]
        self.owners = owners_all[order]

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, text: str) -> tuple[int, list[str]] | None:
        """The first shared n-gram of ``text`` (in text order) as (owner, tokens), or None."""
        tokens = word_tokens(text)
        if len(tokens) < NGRAM or not len(self.hashes):
            return None
        ids = np.array([self.vocab.get(t, -1) for t in tokens], dtype=np.int64)
        starts = np.arange(len(ids) - NGRAM + 1)
        known = np.ones(len(starts), dtype=bool)  # windows without an unknown token
        for k in range(NGRAM):
            known &= ids[starts + k] >= 0
        starts = starts[known]
        if not len(starts):
            return None
        query = _window_hashes(ids, starts)
        lo = np.searchsorted(self.hashes, query, side="left")
        hi = np.searchsorted(self.hashes, query, side="right")
        for start, a, b in zip(starts.tolist(), lo.tolist(), hi.tolist()):
            window = ids[start:start + NGRAM]
            for j in range(a, b):  # confirm on the tokens: a collision is not a match
                at = int(self.starts[j])
                if np.array_equal(self.ids[at:at + NGRAM], window):
                    return int(self.owners[j]), tokens[start:start + NGRAM]
        return None


class Decontaminator:
    """Both checks over a set of evaluation tasks; each index is built on first use."""

    def __init__(self, tasks: Sequence[EvalTask]) -> None:
        self.tasks = list(tasks)
        self._instructions: tuple[NoveltyIndex, list[EvalTask]] | None = None
        self._ngrams: tuple[_NgramIndex, list[EvalTask]] | None = None

    def _instruction_index(self) -> tuple[NoveltyIndex, list[EvalTask]]:
        if self._instructions is None:
            seen: dict[str, EvalTask] = {}
            for task in self.tasks:  # one entry per distinct instruction, its first task
                seen.setdefault(task.instruction, task)
            self._instructions = (NoveltyIndex(list(seen)), list(seen.values()))
        return self._instructions

    def _ngram_index(self) -> tuple[_NgramIndex, list[EvalTask]]:
        if self._ngrams is None:
            owners = [task for task in self.tasks for _ in task.texts]
            self._ngrams = (_NgramIndex([t for task in self.tasks for t in task.texts]), owners)
        return self._ngrams

    def build(self) -> Decontaminator:
        """Build both indexes now (otherwise they are built on first use)."""
        self._instruction_index()
        self._ngram_index()
        return self

    def instruction_hit(self, text: str, threshold: float) -> tuple[str, str] | None:
        """``("contaminated", detail)`` when ``text`` is within ROUGE-L ``threshold`` of an
        evaluation instruction (score above it), else None."""
        index, tasks = self._instruction_index()
        scores = index.scores(text)
        if not len(scores):
            return None
        best = int(np.argmax(scores))
        if scores[best] <= threshold:
            return None
        task = tasks[best]
        return REASON, (f"ROUGE-L {scores[best]:.4f} with evaluation task {task.name} "
                        f"({Path(task.source).name}): {_short(task.instruction)}")

    def instance_hit(self, instance: Instance) -> tuple[str, str] | None:
        """``("contaminated", detail)`` when the instance's input or output shares an
        ``NGRAM``-gram with an evaluation input or output, else None."""
        index, owners = self._ngram_index()
        for name in ("input", "output"):
            found = index.find(getattr(instance, name))
            if found is not None:
                owner, tokens = found
                task = owners[owner]
                return REASON, (f"{name} shares the {NGRAM}-gram \"{' '.join(tokens)}\" with "
                                f"evaluation task {task.name} ({Path(task.source).name})")
        return None


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CACHE: dict[tuple, Decontaminator] = {}


def load_decontaminator(paths: Sequence[str | Path]) -> Decontaminator | None:
    """The evaluation sets of ``paths`` (None when there are none), read once per process.

    A file that is missing or malformed is a :class:`UserError` naming it (and the line).
    The indexes are built on first use and kept with the result.
    """
    if not paths:
        return None
    key = []
    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise UserError(f"{OPTION}: file not found: {file}")
        stat = file.stat()
        key.append((str(file.resolve()), stat.st_size, stat.st_mtime_ns))
    found = _CACHE.get(tuple(key))
    if found is None:
        tasks = [task for path in paths for task in read_eval_set(path)]
        found = _CACHE[tuple(key)] = Decontaminator(tasks)
    return found


def contaminated_instruction(paths: Sequence[str | Path], text: str,
                             threshold: float) -> tuple[str, str] | None:
    """The bootstrap's check: ``("contaminated", detail)`` when ``text`` has ROUGE-L F above
    ``threshold`` with an instruction of the evaluation sets in ``paths``, else None."""
    found = load_decontaminator(paths)
    return None if found is None else found.instruction_hit(text, threshold)
