"""Turn (prompt, completion) examples into token ids with the loss on the completion only.

The paper fine-tunes with prompt loss weight 0: the model is not trained to write
prompts, only to answer them. So every prompt token is labelled ``IGNORE_INDEX`` (-100,
which the causal-LM loss skips) and the completion tokens are labelled with themselves.

Prompt and completion are tokenized separately and concatenated, so the labelled tokens
are exactly the completion's and the prompt tokens are the ones the model sees when it is
asked that prompt at inference time.

The end of a completion: the paper's templates end with the literal text
``<|endoftext|>`` (GPT-3's end marker). That string is not the end token of most models
(SmolLM2 ends with ``<|im_end|>``, Gemma with ``<eos>``), so it is removed from the text
and the tokenizer's own EOS id is appended and labelled, which is what teaches the model
to stop.

Too long for ``max_seq_len``: the completion and its EOS are kept whole, and the prompt
is cut from the left (its end, next to the answer, stays). An example whose completion
alone leaves no room for a prompt token is dropped. Both are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfinstruct.training.data import Example

IGNORE_INDEX = -100
PAPER_END_MARKER = "<|endoftext|>"


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


@dataclass(frozen=True)
class EncodedSet:
    features: list[dict]
    truncated: int
    dropped: int


def mask_prompt(prompt_ids: list[int], completion_ids: list[int], eos_id: int,
                max_len: int, keep_prefix: int = 0) -> Encoded | None:
    """``prompt + completion + [eos]`` with the prompt labelled -100, cut to ``max_len``.

    ``keep_prefix`` leading prompt tokens (a BOS token) survive left truncation. None
    when the completion and EOS leave no room for at least one other prompt token.
    """
    target = list(completion_ids) + [eos_id]
    room = max_len - len(target)
    truncated = len(prompt_ids) > room
    if truncated:
        body_room = room - keep_prefix
        if body_room < 1:
            return None
        prompt_ids = list(prompt_ids[:keep_prefix]) + list(prompt_ids[-body_room:])
    input_ids = list(prompt_ids) + target
    labels = [IGNORE_INDEX] * len(prompt_ids) + target
    return Encoded(input_ids, labels, truncated)


def strip_end_marker(completion: str) -> str:
    """The completion without the paper's trailing ``<|endoftext|>`` text marker."""
    stripped = completion.rstrip()
    if stripped.endswith(PAPER_END_MARKER):
        return stripped[: -len(PAPER_END_MARKER)]
    return completion


def chat_prompt(tokenizer, user_text: str) -> str:
    """The text before the assistant's answer: the chat template's user turn and
    generation prompt when the tokenizer has a template, else ``user_text`` and a blank
    line (the layout of the paper's fine-tuning templates without an ``Output:`` cue)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": user_text}],
                                             tokenize=False, add_generation_prompt=True)
    return f"{user_text}\n\n"


def special_prefix(tokenizer) -> list[int]:
    """The tokens the tokenizer puts before any text (a BOS token, or nothing)."""
    ids = tokenizer("", add_special_tokens=True)["input_ids"]
    return [i for i in ids if i != tokenizer.eos_token_id]


def encode_examples(examples: tuple[Example, ...] | list[Example], tokenizer,
                    max_len: int) -> EncodedSet:
    """Features for the Trainer (``input_ids``, ``attention_mask``, ``labels``)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token")
    prefix = special_prefix(tokenizer)
    features, truncated, dropped = [], 0, 0
    for example in examples:
        if example.chat:  # the chat template writes its own BOS
            prompt_ids = _ids(tokenizer, chat_prompt(tokenizer, example.prompt))
            keep = 0
        else:
            prompt_ids = prefix + _ids(tokenizer, example.prompt)
            keep = len(prefix)
        completion_ids = _ids(tokenizer, strip_end_marker(example.completion))
        encoded = mask_prompt(prompt_ids, completion_ids, tokenizer.eos_token_id, max_len,
                              keep_prefix=keep)
        if encoded is None:
            dropped += 1
            continue
        truncated += encoded.truncated
        features.append({"input_ids": encoded.input_ids, "labels": encoded.labels,
                         "attention_mask": [1] * len(encoded.input_ids)})
    return EncodedSet(features, truncated, dropped)


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
