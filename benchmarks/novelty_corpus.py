"""Build the seeded benchmark corpus for the ROUGE-L novelty filter from real text.

Procedure (deterministic for a given ``--seed``):

1. Real sentences. From ``../shared/data`` (next to the repository root) take, in file
   order: the Self-Instruct seed tasks and user-oriented instructions (instruction, instance
   inputs and outputs) and the SuperNI English test set (task definitions, inputs,
   references). Split each text at sentence ends (``.``, ``!``, ``?`` followed by space) and
   line breaks; keep sentences of 4-40 ROUGE tokens with at least 3 alphabetic tokens;
   drop exact repeats; shuffle. That gives about 55,000 instruction-like sentences.
2. Items, one at a time. With probability ``--dup-rate`` (default 0.2) an item is a
   near-duplicate of an earlier item: 1-6 random edits, each one of: swap two adjacent
   words, insert a common word, delete a word, replace a word, move a 2-4 word chunk
   elsewhere, or change only case and punctuation. Light edits land above ROUGE-L 0.7
   (rejected), heavy ones below (kept), as with paraphrases a model produces. Otherwise the
   item is fresh: the next unused real sentence, or once those run out, a splice of the
   first words of one real sentence and the last words of another (each part at least 3
   words), as models recombine phrases they have seen.

The novelty filter with the seed instructions as ``--against`` rejects about 10-30% of
such a corpus (``benchmarks/novelty.py`` prints the exact rate). Output: JSONL records
``{"id": "c000001", "instruction": "..."}`` under ``benchmarks/data/`` (git-ignored).

    python benchmarks/novelty_corpus.py --size 52000   # -> benchmarks/data/novelty-52000-s0-d0.2.jsonl

The first k items do not depend on ``--size``: a smaller corpus is a prefix of a larger one.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "data"
DATA_DIR = REPO_ROOT / "benchmarks" / "data"
SEED_TASKS = SHARED / "self-instruct-original" / "seed_tasks.jsonl"

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN = re.compile(r"[a-z0-9]+")
_FILLERS = [
    *("the", "a", "an", "of", "to", "in", "for", "and", "or", "with", "on", "that", "this"),
    *("given", "following", "each", "all", "some", "please", "also", "then", "your", "its"),
    *("as", "by", "from", "into", "about", "more", "new", "short", "simple"),
]


def _texts(shared: Path):
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        with open(shared / "self-instruct-original" / name, encoding="utf-8") as f:
            for line in f:
                task = json.loads(line)
                yield task["instruction"]
                for inst in task["instances"]:
                    yield inst["input"]
                    yield inst["output"]
    with open(shared / "superni-test" / "superni_test_en.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            yield row["definition"]
            yield row["input"]
            yield from row["outputs"]


def real_sentences(shared: Path = SHARED, seed: int = 0) -> list[str]:
    """Unique instruction-like sentences from the shared data, shuffled with ``seed``."""
    seen: dict[str, None] = {}
    for text in _texts(shared):
        for sentence in _SENTENCE_SPLIT.split(text):
            sentence = " ".join(sentence.split())
            tokens = _TOKEN.findall(sentence.lower())
            if 4 <= len(tokens) <= 40 and sum(t.isalpha() for t in tokens) >= 3:
                seen.setdefault(sentence, None)
    sentences = list(seen)
    random.Random(seed).shuffle(sentences)
    return sentences


def _mutate(words: list[str], rng: random.Random, vocabulary: list[str]) -> list[str]:
    words = list(words)
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4, 6))):
        n = len(words)
        op = rng.randrange(6)
        if op == 0 and n >= 2:  # swap two adjacent words
            i = rng.randrange(n - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == 1:  # insert a common word
            words.insert(rng.randrange(n + 1), rng.choice(_FILLERS))
        elif op == 2 and n > 4:  # delete a word
            del words[rng.randrange(n)]
        elif op == 3 and n:  # replace a word with one seen elsewhere
            words[rng.randrange(n)] = rng.choice(vocabulary)
        elif op == 4 and n >= 6:  # move a 2-4 word chunk
            size = rng.randint(2, 4)
            i = rng.randrange(n - size + 1)
            chunk, rest = words[i : i + size], words[:i] + words[i + size :]
            j = rng.randrange(len(rest) + 1)
            words = rest[:j] + chunk + rest[j:]
        elif n:  # case and punctuation only: the same ROUGE tokens
            i = rng.randrange(n)
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i] + ","
    return words


def _splice(split: list[list[str]], rng: random.Random) -> list[str]:
    """A new sentence from 2-3 random windows of 3-10 words, each from another sentence."""
    words: list[str] = []
    for _ in range(rng.choice((2, 2, 3))):
        source = rng.choice(split)
        size = rng.randint(3, 10)
        start = rng.randrange(max(1, len(source) - size + 1))
        words += source[start : start + size]
    return words


def build(size: int, seed: int = 0, dup_rate: float = 0.2, shared: Path = SHARED) -> list[str]:
    """``size`` instruction-like texts built by the procedure in the module docstring."""
    rng = random.Random(seed)
    sentences = real_sentences(shared, seed)
    split = [s.split() for s in sentences]
    vocabulary = sorted({w for words in split[:5000] for w in words})
    items: list[str] = []
    fresh = 0
    for _ in range(size):
        if items and rng.random() < dup_rate:
            base = items[rng.randrange(len(items))].split()
            items.append(" ".join(_mutate(base, rng, vocabulary)))
        elif fresh < len(sentences):
            items.append(sentences[fresh])
            fresh += 1
        else:
            items.append(" ".join(_splice(split, rng)))
    return items


def corpus_path(size: int, seed: int = 0, dup_rate: float = 0.2) -> Path:
    return DATA_DIR / f"novelty-{size}-s{seed}-d{dup_rate:g}.jsonl"


def write_corpus(size: int, seed: int = 0, dup_rate: float = 0.2) -> Path:
    """Build the corpus (if not already on disk) and return its path."""
    path = corpus_path(size, seed, dup_rate)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"id": f"c{i:07d}", "instruction": text}) + "\n"
            for i, text in enumerate(build(size, seed, dup_rate))
        )
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dup-rate", type=float, default=0.2)
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2
    print(write_corpus(args.size, args.seed, args.dup_rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
