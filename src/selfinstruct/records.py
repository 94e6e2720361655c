"""The plain records that flow between stages, and their JSON form.

- :class:`Instance`: one input/output pair.
- :class:`Task`: an instruction with its instances; seeds and exported tasks are Tasks.
- :class:`Instruction`: a machine instruction the bootstrap kept, with its provenance.
- :class:`Reject`: anything dropped, with the stage and the reason.

Every record has a stable ``id`` so that a resumed stage can tell what it already wrote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Instance:
    input: str
    output: str


@dataclass
class Task:
    id: str
    instruction: str
    instances: list[Instance] = field(default_factory=list)
    is_classification: bool | None = None
    name: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Task:
        return cls(
            id=data["id"],
            instruction=data["instruction"],
            instances=[Instance(i["input"], i["output"]) for i in data.get("instances", [])],
            is_classification=data.get("is_classification"),
            name=data.get("name"),
        )


@dataclass
class Instruction:
    """A machine-written instruction that passed every bootstrap filter, with where it came
    from: the request (index and prompt), the raw completion, its 10 most similar pool
    instructions with their ROUGE-L scores, and its mean score against the whole pool."""

    id: str
    instruction: str
    request_index: int
    position: int
    most_similar: list[tuple[str, float]]
    avg_similarity: float
    raw_completion: str
    prompt: str = ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["most_similar"] = [[text, score] for text, score in self.most_similar]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Instruction:
        return cls(
            id=data["id"],
            instruction=data["instruction"],
            request_index=data["request_index"],
            position=data["position"],
            most_similar=[(t, s) for t, s in data["most_similar"]],
            avg_similarity=data["avg_similarity"],
            raw_completion=data["raw_completion"],
            prompt=data.get("prompt", ""),
        )


@dataclass
class Reject:
    """Anything dropped or not done, by any stage: the record's ``id``, the ``stage``, a
    short ``reason`` code and a ``detail`` that explains it. ``kind`` says what was
    dropped, which decides the JSON form:

    - ``instruction`` (``rejects.jsonl``): a bootstrap candidate, its ``text``;
    - ``instance`` (``instance_rejects.jsonl``): one input/output pair of a task;
    - ``task`` (``instance_rejects.jsonl``, with ``"task": true``): a task dropped whole;
    - ``failure`` (``failures.jsonl``): a request that failed for good this session
      (retried on the next run).
    """

    id: str
    stage: str
    reason: str
    text: str = ""
    detail: str = ""
    kind: str = "instruction"
    instance: Instance | None = None

    @classmethod
    def of_instance(cls, record_id: str, reason: str, instance: Instance,
                    detail: str = "") -> Reject:
        return cls(record_id, "postprocess", reason, detail=detail, kind="instance",
                   instance=instance)

    @classmethod
    def of_task(cls, record_id: str, reason: str, instruction: str) -> Reject:
        return cls(record_id, "postprocess", reason, text=instruction, kind="task")

    @classmethod
    def failure(cls, record_id: str, stage: str, reason: str | None) -> Reject:
        return cls(record_id, stage, reason or "unknown error", kind="failure")

    def to_json(self) -> dict:
        data: dict = {"id": self.id, "stage": self.stage, "reason": self.reason}
        if self.kind == "instruction":
            data.update(text=self.text, detail=self.detail)
        elif self.kind == "instance" and self.instance is not None:
            data.update(input=self.instance.input, output=self.instance.output)
            if self.detail:
                data["detail"] = self.detail
        elif self.kind == "task":
            data.update(task=True, instruction=self.text)
        return data
