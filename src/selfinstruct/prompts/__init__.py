"""Prompt templates and the builders that turn records into prompts.

``PromptTemplates.load()`` reads the project's own templates; ``PromptTemplates.load(DIR)``
reads a directory with the same file names, such as the original Self-Instruct
templates, in which case every prompt built here is byte-identical to the original
implementation's.
"""

from selfinstruct.prompts.builders import (
    bootstrap_prompt,
    classification_prompt,
    finetuning_example,
    instance_prompt,
)
from selfinstruct.prompts.templates import PromptTemplates

__all__ = [
    "PromptTemplates",
    "bootstrap_prompt",
    "classification_prompt",
    "finetuning_example",
    "instance_prompt",
]
