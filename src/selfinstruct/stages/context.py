"""What each stage may read and write, as narrow protocols.

A stage is a function over records: it reads one log of the run directory, asks a model
through :meth:`ask`, and appends to the next log. It is typed with the protocol below that
names what it uses, not with the whole :class:`~selfinstruct.run.context.RunContext`, so a
reader sees at a glance what a stage depends on, the type checker stops a stage from
reaching for more, and a test can call a stage with anything that has these members.
``RunContext`` satisfies all of them.

=============  ==============================================================  ==========
stage          reads                                                           writes
=============  ==============================================================  ==========
bootstrap      seeds, templates, config                                        instructions, rejects
classify       instructions; the seeds (to calibrate)                          classifications, the calibration
instances      classifications                                                 instances
answers        instances (what postprocess would keep); the seeds (to fit)     answers, the curation
postprocess    instances, answers, seeds, templates, config                    tasks, instance rejects
export         tasks (a plain function over :class:`~selfinstruct.records.Task`)  one file
=============  ==============================================================  ==========

Each stage that asks a model also writes ``failures.jsonl`` (:meth:`record_failure`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from selfinstruct.backends.base import Backend, Completion, Request
from selfinstruct.backends.budget import Budget
from selfinstruct.progress import Reporter
from selfinstruct.prompts import PromptTemplates
from selfinstruct.records import Task
from selfinstruct.run.config import RunConfig
from selfinstruct.run.rundir import RunDir


class Settings(Protocol):
    """The run's parameters and inputs, read only."""

    @property
    def config(self) -> RunConfig: ...
    @property
    def templates(self) -> PromptTemplates: ...
    @property
    def seeds(self) -> list[Task]: ...


class Asking(Settings, Protocol):
    """A stage that asks a model: the one request loop, failures, progress."""

    @property
    def run(self) -> RunDir: ...
    @property
    def reporter(self) -> Reporter: ...

    def ask(self, stage: str, requests: Sequence[Request],
            backend: Backend | None = None) -> Iterator[tuple[int, Completion]]: ...

    def record_failure(self, record_id: str, stage: str, reason: str | None) -> None: ...


class BootstrapContext(Asking, Protocol):
    @property
    def budget(self) -> Budget: ...  # what is left, shown beside the progress bar


class ClassifyContext(Asking, Protocol):
    @property
    def backend(self) -> Backend: ...  # the model (whether it decodes in batches)

    def ask_shared(self, stage: str, requests: Sequence[Request],
                   backend: Backend | None = None) -> Iterator[tuple[int, Completion]]: ...

    # False for the preview: the seed tasks' scores come from the shipped calibration or
    # the shared cache only (a miss is a failed completion), never from the model
    @property
    def may_score_seeds(self) -> bool: ...

    def record_calibration(self, calibration: dict) -> None: ...


class InstancesContext(Asking, Protocol):
    @property
    def answer_backend(self) -> Backend: ...  # the model, or its --answer-lora adapter


class AnswersContext(Asking, Protocol):
    @property
    def answer_backend(self) -> Backend: ...  # the model, or its --answer-lora adapter

    def ask_shared(self, stage: str, requests: Sequence[Request],
                   backend: Backend | None = None) -> Iterator[tuple[int, Completion]]: ...

    def record_curation(self, curation: dict) -> None: ...


class PostprocessContext(Settings, Protocol):
    @property
    def run(self) -> RunDir: ...
