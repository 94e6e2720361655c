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
    """Something a stage dropped. ``reason`` is a short code; ``detail`` explains it."""

    id: str
    stage: str
    reason: str
    text: str
    detail: str = ""

    def to_json(self) -> dict:
        return asdict(self)
