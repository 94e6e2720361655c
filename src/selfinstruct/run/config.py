"""Run configuration, with the original Self-Instruct settings as defaults.

One dataclass, validated in one place (:meth:`RunConfig.validate`), which names the field
and the bound it broke. ``from_dict`` rejects unknown keys. The manifest stores
``as_dict()``; resuming compares it with the new configuration (:func:`differences`).
"""

from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import asdict, dataclass, fields

from selfinstruct.backends.base import Sampling
from selfinstruct.backends.opening import ModelOptions
from selfinstruct.backends.pool.endpoints import redact_base_urls, split_base_urls
from selfinstruct.errors import UserError
from selfinstruct.run.recipes import CLASSIFIERS, DEFAULT_RECIPE, RECIPES, Recipe

# Fields that may change between a run and its resumption without changing any record.
# Where the requests run (executor, ray_address, replicas) is one: the embedded model gives
# the same completion for a request wherever it runs, and cache keys ignore it.
# So are the curation thresholds: they decide in postprocess, which runs again on every
# session, and ask no model.
RESUMABLE_FIELDS = frozenset({"num_instructions", "max_concurrency", "max_requests",
                              "request_timeout", "max_tokens_total", "max_cost",
                              "input_price", "output_price",
                              "executor", "ray_address", "replicas", "threads",
                              "give_up_after", "min_agreement", "max_ifd"})
EXECUTORS = ("local", "ray")
# Defaults that have changed. A manifest stores every field, so one that lacks a field was
# written before the field existed, under the behaviour of that time: no recipe meant the
# paper's decisions (``refined`` became the default later).
FORMER_DEFAULTS = {"recipe": "paper"}


def with_former_defaults(stored: dict) -> dict:
    """A manifest's config with the fields it predates set as they behaved then."""
    return {**FORMER_DEFAULTS, **stored}


@dataclass
class RunConfig:
    # which decisions: "paper" (the original code's) or "refined" (see recipes.py)
    recipe: str = DEFAULT_RECIPE
    # classification rule; None: the recipe's ("paper" greedy Yes/No, or "calibrated")
    classifier: str | None = None
    # what to generate
    num_instructions: int = 100
    seed: int = 42
    classification_only: bool = False
    include_seeds: bool = False
    # model
    model: str = "smollm2"
    base_url: str | None = None
    lora: str | None = None  # llama.cpp LoRA adapter (GGUF) on the embedded model
    # a llama.cpp LoRA adapter of the same model that writes the instances ("the answerer"),
    # e.g. one fine-tuned on the seed tasks; None: the model itself answers
    answer_lora: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    chat: bool = False
    n_ctx: int = 4096
    prefix_cache: bool = True
    max_concurrency: int = 1
    request_timeout: float = 120.0
    # seconds a server may fail every attempt before the run stops asking it (0: never)
    give_up_after: float = 300.0
    threads: int = 0  # llama.cpp threads of the embedded model; 0: from the free cores
    # where the requests run: this process, or Ray actors (each holding the backend)
    executor: str = "local"
    ray_address: str | None = None  # None: $RAY_ADDRESS, a `ray start` one here, or a new one
    replicas: int = 0  # Ray actors; 0: one per CPU of the cluster
    # budgets (0: none); prices in USD per million tokens
    max_tokens_total: int = 0
    max_cost: float = 0.0
    input_price: float = 0.0
    output_price: float = 0.0
    # inputs (None: the project's own)
    seeds: str | None = None
    prompts: str | None = None
    # bootstrap: the original code's settings
    num_prompt_instructions: int = 8
    num_machine_instructions: int = 2
    request_batch_size: int = 5
    bootstrap_temperature: float = 0.7
    bootstrap_top_p: float = 0.5
    bootstrap_presence_penalty: float = 2.0
    bootstrap_max_tokens: int = 1024
    similarity_threshold: float = 0.7
    max_requests: int = 0  # 0: 20 requests per instruction asked for
    # evaluation sets to keep away from (comma-joined paths); instructions too close to
    # one are dropped as rejects
    decontaminate: str | None = None
    # instances
    max_instances_per_task: int = 5
    instance_presence_penalty: float = 1.5
    instance_max_tokens_classification: int = 300
    instance_max_tokens_generation: int = 350
    # answers and curation (the curated recipe; see stages/answers.py)
    answers: int = 4  # candidate answers sampled per instance, beside its own output
    answer_temperature: float = 0.7
    answer_max_tokens: int = 128
    answer_shots: int = 2  # seed demonstrations before each answer prompt
    min_agreement: float | None = None  # None: fitted on the seed tasks
    agreement_fit_tasks: int = 80  # seed tasks answered to fit it (0: all)
    # tasks with known outputs to fit it on (seed format); None: the run's seeds. Give
    # tasks the answerer was not fine-tuned on: on its own training tasks its agreement
    # measures memory (docs/experiments, "Round 3")
    agreement_fit_seeds: str | None = None
    agreement_min_kept: float = 0.3  # the fit keeps at least this share of seed answers
    max_ifd: float = 1.0  # drop a pair at this instruction-following difficulty or above

    def model_options(self) -> ModelOptions:
        """Which model answers and how it is reached (:mod:`selfinstruct.backends.opening`)."""
        return ModelOptions(
            model=self.model, base_url=self.base_url, api_key_env=self.api_key_env,
            n_ctx=self.n_ctx, prefix_cache=self.prefix_cache,
            request_timeout=self.request_timeout, lora=self.lora,
            n_threads=self.threads or None, batch_size=self.max_concurrency,
            executor=self.executor,
            ray_address=self.ray_address, replicas=self.replicas)

    def validate(self) -> RunConfig:
        self._check_types()

        def bound(name: str, low: float, high: float | None = None) -> None:
            value = getattr(self, name)
            if value < low or (high is not None and value > high):
                flag = "--" + name.replace("_", "-")
                rng = f"between {low} and {high}" if high is not None else f"at least {low}"
                error = UserError(f"{flag}: must be {rng}, got {value}")
                error.field = name  # lets a config file's reader name its own line
                raise error

        bound("num_instructions", 1)
        bound("similarity_threshold", 0.0, 1.0)
        bound("bootstrap_temperature", 0.0, 2.0)
        bound("bootstrap_top_p", 0.0, 1.0)
        bound("bootstrap_presence_penalty", -2.0, 2.0)
        bound("instance_presence_penalty", -2.0, 2.0)
        bound("bootstrap_max_tokens", 1)
        bound("instance_max_tokens_classification", 1)
        bound("instance_max_tokens_generation", 1)
        bound("num_prompt_instructions", 1)
        bound("num_machine_instructions", 0, self.num_prompt_instructions)
        bound("request_batch_size", 1)
        bound("max_concurrency", 1, 256)
        bound("request_timeout", 0.1)
        bound("give_up_after", 0.0)
        bound("max_tokens_total", 0)
        bound("max_cost", 0.0)
        bound("input_price", 0.0)
        bound("output_price", 0.0)
        bound("max_instances_per_task", 1)
        bound("max_requests", 0)
        bound("n_ctx", 256)
        bound("replicas", 0)
        bound("threads", 0)
        bound("answers", 1, 16)
        bound("answer_temperature", 0.0, 2.0)
        bound("answer_max_tokens", 1)
        bound("answer_shots", 0, 8)
        if self.min_agreement is not None:
            bound("min_agreement", 0.0, 1.0)
        bound("agreement_fit_tasks", 0)
        bound("agreement_min_kept", 0.0, 1.0)
        if self.agreement_fit_seeds is not None:
            from pathlib import Path

            if not Path(self.agreement_fit_seeds).is_file():
                error = UserError(f"--agreement-fit-seeds: file not found: "
                                  f"{self.agreement_fit_seeds}")
                error.field = "agreement_fit_seeds"
                raise error
        bound("max_ifd", 0.0)
        if self.base_url is not None:
            try:
                split_base_urls(self.base_url)
            except UserError as exc:
                exc.field = "base_url"
                raise
        for name, allowed in (("recipe", tuple(RECIPES)), ("classifier", CLASSIFIERS)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                error = UserError(f"--{name}: must be one of {', '.join(allowed)}, "
                                  f"got {value!r}")
                error.field = name
                raise error
        if self.executor not in EXECUTORS:
            error = UserError(f"--executor: must be one of {', '.join(EXECUTORS)}, "
                              f"got {self.executor!r}")
            error.field = "executor"
            raise error
        return self

    def _check_types(self) -> None:
        """Every field holds a value of its declared type (from flags, a config file or a
        manifest), and every float is finite: NaN passes every ``<`` bound unnoticed and
        infinity is no setting; neither would survive the manifest's JSON."""
        for name, kind in _field_kinds().items():
            value = getattr(self, name)
            if value is None and name in _NULLABLE_FIELDS:
                continue
            is_bool = isinstance(value, bool)
            if kind is float and isinstance(value, int) and not is_bool:
                value = float(value)
                setattr(self, name, value)
            fits = isinstance(value, kind) and (kind is bool or not is_bool) \
                if kind in (bool, int, float, str) else True
            flag = "--" + name.replace("_", "-")
            if not fits:
                error = UserError(f"{flag}: expected {_KIND_NAMES[kind]}, got "
                                  f"{_describe(value)}")
                error.field = name
                raise error
            if kind is float and not math.isfinite(value):
                error = UserError(f"{flag}: must be a finite number, got {value}")
                error.field = name
                raise error

    @property
    def recipe_settings(self) -> Recipe:
        return RECIPES[self.recipe]

    @property
    def classification_rule(self) -> str:
        return self.classifier or self.recipe_settings.classifier

    @property
    def decontamination_files(self) -> list[str]:
        return [p for p in (self.decontaminate or "").split(",") if p]

    @property
    def request_budget(self) -> int:
        return self.max_requests or 20 * self.num_instructions

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{where}: unknown key '{unknown[0]}'")
        return cls(**data).validate()

    # Sampling parameters of each stage ------------------------------------------------
    def bootstrap_sampling(self, seed: int) -> Sampling:
        return Sampling(
            temperature=self.bootstrap_temperature, top_p=self.bootstrap_top_p,
            max_tokens=self.bootstrap_max_tokens,
            presence_penalty=self.bootstrap_presence_penalty,
            stop=("\n\n", "\n16", "16.", "16 ."), seed=seed,
        )

    def classification_sampling(self) -> Sampling:
        return Sampling(temperature=0.0, top_p=0.0, max_tokens=3, stop=("\n", "Task"), seed=0)

    def answer_sampling(self, seed: int) -> Sampling:
        from selfinstruct.prompts.answering import STOP

        return Sampling(temperature=self.answer_temperature, top_p=1.0,
                        max_tokens=self.answer_max_tokens, stop=STOP, seed=seed)

    def instance_sampling(self, is_classification: bool) -> Sampling:
        max_tokens = (self.instance_max_tokens_classification if is_classification
                      else self.instance_max_tokens_generation)
        return Sampling(
            temperature=0.0, top_p=0.0, max_tokens=max_tokens,
            presence_penalty=self.instance_presence_penalty,
            stop=(f"Example {self.max_instances_per_task + 1}", "Task:"), seed=0,
        )


_KIND_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


@functools.cache
def _field_kinds() -> dict[str, type]:
    """Each field's type; ``X | None`` fields are listed as ``X``."""
    hints = typing.get_type_hints(RunConfig)
    out = {}
    for f in fields(RunConfig):
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = args[0] if len(args) == 1 else hint
        out[f.name] = hint
    return out


_NULLABLE_FIELDS = frozenset(f.name for f in fields(RunConfig) if f.default is None)


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "null" if value is None else type(value).__name__


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable differences that matter for resuming (``RESUMABLE_FIELDS`` excluded)."""
    out = []
    defaults = RunConfig().as_dict()
    # credentials never compared, or shown
    old, new = stored_config(with_former_defaults(old)), stored_config(with_former_defaults(new))
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_FIELDS and not (key == "max_concurrency" and _embedded(new)):
            continue
        # a key missing from an older manifest had its default then
        if old.get(key, defaults.get(key)) != new.get(key, defaults.get(key)):
            why = " (on the embedded model, the decoding batch)" if key == "max_concurrency" else ""
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}{why}")
    return out


def _embedded(config: dict) -> bool:
    """On the embedded model ``max_concurrency`` is the decoding batch, and a batch decodes
    other text than one request alone: a resumed run must keep it."""
    from selfinstruct.backends.registry import prefix_of

    return not config.get("base_url") and not prefix_of(str(config.get("model") or "smollm2"))


def stored_config(config: dict) -> dict:
    """``config`` as the manifest stores it: a ``base_url`` without its credentials."""
    if not config.get("base_url") or not isinstance(config["base_url"], str):
        return config
    return {**config, "base_url": redact_base_urls(config["base_url"])}
