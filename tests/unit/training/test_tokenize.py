"""Completion-only labels, truncation, EOS and padding: the logic, on plain id lists.

The same code on the real SmolLM2 tokenizer is checked in
tests/integration/test_finetune.py."""

from __future__ import annotations

import pytest

from selfinstruct.errors import UserError
from selfinstruct.training.collate import pad_right
from selfinstruct.training.data import Example
from selfinstruct.training.manifest import differences, prepare_out_dir, write_manifest
from selfinstruct.training.tokenize import (
    IGNORE_INDEX,
    chat_prompt,
    encode_examples,
    mask_prompt,
    strip_end_marker,
)

EOS = 2


def test_prompt_tokens_are_ignored_and_completion_plus_eos_learned():
    encoded = mask_prompt([10, 11, 12], [20, 21], EOS, max_len=16)
    assert encoded.input_ids == [10, 11, 12, 20, 21, EOS]
    assert encoded.labels == [IGNORE_INDEX] * 3 + [20, 21, EOS]
    assert not encoded.truncated


def test_long_prompt_is_cut_from_the_left_keeping_bos_and_completion():
    encoded = mask_prompt([1, 10, 11, 12, 13, 14], [20, 21], EOS, max_len=6, keep_prefix=1)
    assert encoded.input_ids == [1, 13, 14, 20, 21, EOS]
    assert encoded.labels == [IGNORE_INDEX] * 3 + [20, 21, EOS]
    assert encoded.truncated and len(encoded.input_ids) == 6


def test_completion_that_leaves_no_room_for_the_prompt_is_dropped():
    assert mask_prompt([10, 11], [20, 21, 22], EOS, max_len=4) is None
    assert mask_prompt([1, 10], [20, 21], EOS, max_len=4, keep_prefix=1) is None
    assert mask_prompt([10], [20, 21], EOS, max_len=4) is not None


def test_paper_end_marker_is_replaced_by_the_model_eos():
    assert strip_end_marker(" Paris<|endoftext|>") == " Paris"
    assert strip_end_marker("Paris<|endoftext|>\n") == "Paris"
    assert strip_end_marker("Paris") == "Paris"


class WordTokenizer:
    """One id per whitespace-separated word; BOS 1, EOS 2; no chat template."""

    eos_token_id = EOS
    chat_template = None

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, add_special_tokens=True):
        ids = [self.vocab.setdefault(w, 100 + len(self.vocab)) for w in text.split()]
        return {"input_ids": ([1] if add_special_tokens else []) + ids}


def test_encode_examples_counts_truncated_and_dropped():
    tokenizer = WordTokenizer()
    examples = [Example("a b c", " x<|endoftext|>"),           # fits
                Example("a b c d e f g", " x y"),              # prompt cut
                Example("a", " x y z w v u t s"),              # completion too long
                Example("question here", "answer", chat=True)]  # plain chat layout
    encoded = encode_examples(examples, tokenizer, max_len=6)
    assert (encoded.truncated, encoded.dropped, len(encoded.features)) == (1, 1, 3)
    first, cut, chat = encoded.features
    assert first["input_ids"][0] == 1 and first["input_ids"][-1] == EOS
    assert first["labels"] == [IGNORE_INDEX] * 4 + [tokenizer.vocab["x"], EOS]
    assert cut["input_ids"][0] == 1 and len(cut["input_ids"]) == 6
    assert chat["input_ids"][0] != 1  # the chat layout brings its own special tokens
    assert chat["labels"][-2:] == [tokenizer.vocab["answer"], EOS]
    assert all(f["attention_mask"] == [1] * len(f["input_ids"]) for f in encoded.features)


def test_chat_without_a_template_is_user_text_and_a_blank_line():
    assert chat_prompt(WordTokenizer(), "Say hi") == "Say hi\n\n"


def test_padding_is_on_the_right_and_never_learned():
    batch = pad_right([{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1],
                        "labels": [-100, 6, 7]},
                       {"input_ids": [5], "attention_mask": [1], "labels": [5]}], pad_id=EOS)
    assert batch["input_ids"] == [[5, 6, 7], [5, EOS, EOS]]
    assert batch["attention_mask"] == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"] == [[-100, 6, 7], [5, -100, -100]]


def _manifest(**options):
    base = {"base": "smollm2", "learning_rate": 2e-4, "seed": 42, "max_steps": 10}
    return {"data": {"sha256": "a" * 64}, "options": {**base, **options}}


def test_resume_allows_more_steps_but_refuses_other_options(tmp_path):
    write_manifest(tmp_path, _manifest())
    assert prepare_out_dir(tmp_path, _manifest(max_steps=50), force_new=False) is not None
    assert differences(_manifest(), _manifest(learning_rate=1e-3)) == [
        "learning_rate: 0.0002 -> 0.001"]
    with pytest.raises(UserError, match=r"other data or options \(learning_rate: 0.0002 -> "
                                        r"0.001\).*--force-new"):
        prepare_out_dir(tmp_path, _manifest(learning_rate=1e-3), force_new=False)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "mine.txt").write_text("kept")
    assert prepare_out_dir(tmp_path, _manifest(seed=1), force_new=True) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_a_directory_with_other_content_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="is not empty and holds no finetune.json"):
        prepare_out_dir(tmp_path, _manifest(), force_new=False)
