"""Build the four kinds of prompt, byte for byte as the original implementation does.

- bootstrap: the header, then ``k. instruction`` lines for k = 1..n, then ``n+1.``.
  Each in-context instruction has its whitespace runs collapsed to one space, is
  stripped, and loses any colons at its end.
- classification: template, a space, the stripped instruction, a newline, then
  ``Is it classification?``.
- instances: template, a space, the stripped instruction, a newline.
- fine-tuning: one [prompt, completion] template pair, chosen by the caller's generator.
"""

from __future__ import annotations

import random
import re

from selfinstruct.prompts.templates import PromptTemplates

_WHITESPACE = re.compile(r"\s+")


def bootstrap_prompt(templates: PromptTemplates, instructions: list[str],
                     classification: bool = False) -> str:
    header = (templates.instruction_header_classification if classification
              else templates.instruction_header)
    parts = [header]
    for number, instruction in enumerate(instructions, start=1):
        cleaned = _WHITESPACE.sub(" ", instruction).strip().rstrip(":")
        parts.append(f"{number}. {cleaned}\n")
    parts.append(f"{len(instructions) + 1}.")
    return "".join(parts)


def classification_prompt(templates: PromptTemplates, instruction: str) -> str:
    return f"{templates.classification} {instruction.strip()}\nIs it classification?"


def instance_prompt(templates: PromptTemplates, instruction: str, is_classification: bool) -> str:
    template = (templates.instance_output_first if is_classification
                else templates.instance_input_first)
    return f"{template} {instruction.strip()}\n"


def finetuning_example(templates: PromptTemplates, instruction: str, input_text: str,
                       output: str, rng: random.Random) -> tuple[str, str]:
    """One (prompt, completion) pair in a randomly chosen fine-tuning format."""
    if input_text.strip():
        prompt_t, completion_t = rng.choice(templates.finetuning_with_input)
        prompt = prompt_t.format(instruction=instruction.strip(), input=input_text.strip())
    else:
        prompt_t, completion_t = rng.choice(templates.finetuning_without_input)
        prompt = prompt_t.format(instruction=instruction.strip())
    return prompt, completion_t.format(output=output.strip())
