"""Command-line options that map one to one onto :class:`selfinstruct.run.config.RunConfig`.

Each option is declared once here, with its help text; the default shown is the
dataclass default, i.e. the original Self-Instruct setting.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import fields

from selfinstruct.backends.opening import ModelOptions
from selfinstruct.errors import UserError
from selfinstruct.run.config import EXECUTORS, RunConfig, with_former_defaults
from selfinstruct.run.config_file import read_config_file
from selfinstruct.run.recipes import CLASSIFIERS, RECIPES

_DEFAULTS = {f.name: f.default for f in fields(RunConfig)}

# (field, group, type, help). Booleans become --flag / --no-flag.
OPTIONS: list[tuple[str, str, type, str]] = [
    ("recipe", "generation", str, ("paper: the original code, decision for decision; refined: "
                                   "calibrated classification, leak and decontamination "
                                   "filters; curated: refined, and only answers the model "
                                   "agrees on and recovers (see the README)")),
    ("classifier", "generation", str, ("classification rule: paper (greedy Yes/No) or "
                                       "calibrated (Yes-No margin, threshold fitted on the "
                                       "seeds); default: the recipe's")),
    ("decontaminate", "generation", str, ("evaluation set (JSONL) whose tasks the data must "
                                          "not copy; repeat it for several")),
    ("num_instructions", "generation", int, "machine instructions to keep"),
    ("seed", "generation", int, "run seed; every random choice derives from it"),
    ("seeds", "generation", str, "seed tasks file (JSONL, original schema); default: ours"),
    ("prompts", "generation", str, "directory of prompt templates; default: ours"),
    ("classification_only", "generation", bool,
     "bootstrap from classification seeds only, with the classification header"),
    ("include_seeds", "generation", bool, "add the seed tasks to the exported data"),
    ("model", "model", str, ("smollm2, gemma-3-270m, a .gguf path, transformers:PATH, or a "
                             "server's model name")),
    ("lora", "model", str, ("llama.cpp LoRA adapter (GGUF) for the embedded model, e.g. "
                           "from selfinstruct finetune")),
    ("answer_lora", "model", str, ("llama.cpp LoRA adapter of the same model that writes "
                                   "the instances, e.g. a fine-tune on the seed tasks")),
    ("base_url", "model", str, ("OpenAI-compatible server URL (vLLM, llama.cpp, Ollama...); "
                                "repeat it, or separate URLs by commas, to spread requests "
                                "over several servers")),
    ("api_key_env", "model", str, "environment variable that holds the API key"),
    ("chat", "model", bool, "use the chat endpoint instead of raw completions"),
    ("n_ctx", "model", int, "context window of the embedded model"),
    ("prefix_cache", "model", bool, "reuse the model state of shared prompt prefixes"),
    ("max_concurrency", "model", int, ("requests in flight at once; on the embedded model, "
                                       "requests decoded together in one batch")),
    ("request_timeout", "model", float, "seconds before a server request is retried"),
    ("give_up_after", "model", float, ("seconds a server may fail every attempt before the "
                                       "run stops asking it and ends incomplete (exit code "
                                       "4; re-run to continue); 0: retry every request")),
    ("threads", "model", int, ("llama.cpp threads of the embedded model (0: as many as "
                               "there are free cores, re-checked as the load changes)")),
    ("executor", "scale-out", str, ("where requests run: local, or ray (actors each holding "
                                    "the model; pip install 'selfinstruct[ray]')")),
    ("ray_address", "scale-out", str, ("with --executor ray: the cluster to join, auto or "
                                       "HOST:PORT; not given: $RAY_ADDRESS, or the cluster "
                                       "'ray start' began here, or a new local one")),
    ("replicas", "scale-out", int, "with --executor ray: actors to start (0: one per CPU)"),
    ("max_tokens_total", "budget", int, "stop cleanly after this many tokens in+out (0: none)"),
    ("max_cost", "budget", float, "stop cleanly at this cost in USD (0: none)"),
    ("input_price", "budget", float, "USD per million prompt tokens, for --max-cost"),
    ("output_price", "budget", float, "USD per million completion tokens, for --max-cost"),
    ("num_prompt_instructions", "bootstrap", int, "in-context instructions per prompt"),
    ("num_machine_instructions", "bootstrap", int, "of which machine-written, when available"),
    ("request_batch_size", "bootstrap", int, "prompts built from one pool snapshot"),
    ("bootstrap_temperature", "bootstrap", float, "sampling temperature"),
    ("bootstrap_top_p", "bootstrap", float, "nucleus sampling top_p"),
    ("bootstrap_presence_penalty", "bootstrap", float, "presence penalty"),
    ("bootstrap_max_tokens", "bootstrap", int, "max new tokens per request"),
    ("similarity_threshold", "bootstrap", float, "reject at ROUGE-L F above this"),
    ("max_requests", "bootstrap", int, "stop after this many requests (0: 20 per instruction)"),
    ("max_instances_per_task", "instances", int, "instances to ask for and keep per task"),
    ("instance_presence_penalty", "instances", float, "presence penalty"),
    ("instance_max_tokens_classification", "instances", int, "max new tokens, classification"),
    ("instance_max_tokens_generation", "instances", int, "max new tokens, other tasks"),
    ("answers", "curation", int, ("curated recipe: answers sampled per instance, beside its "
                                  "own output; the kept output is their ROUGE-L medoid")),
    ("answer_temperature", "curation", float, "sampling temperature of those answers"),
    ("answer_max_tokens", "curation", int, "max new tokens of an answer"),
    ("answer_shots", "curation", int, "seed demonstrations before each answer prompt"),
    ("min_agreement", "curation", float, ("drop an instance whose answers agree less "
                                          "(mean ROUGE-L of the medoid); default: fitted "
                                          "on the seed tasks")),
    ("agreement_fit_tasks", "curation", int, "seed tasks answered to fit it (0: all)"),
    ("agreement_fit_seeds", "curation", str, ("tasks with known outputs to fit it on (seed "
                                              "format); default: the seeds. Give tasks the "
                                              "answerer was not fine-tuned on")),
    ("agreement_min_kept", "curation", float, ("the fitted threshold keeps at least this "
                                               "share of the seed answers")),
    ("max_ifd", "curation", float, ("drop a pair at this instruction-following difficulty "
                                    "or above (1: the instruction does not help)")),
]


def _one_of(names: Iterable[str]) -> str:
    return "{" + ",".join(names) + "}"


# What each option's value is, for the help's metavar (booleans take none).
METAVARS: dict[str, str] = {
    "recipe": _one_of(RECIPES), "classifier": _one_of(CLASSIFIERS),
    "decontaminate": "PATH", "num_instructions": "N", "seed": "N", "seeds": "PATH",
    "prompts": "DIR", "model": "NAME", "lora": "PATH", "answer_lora": "PATH",
    "base_url": "URL", "api_key_env": "NAME", "n_ctx": "TOKENS", "max_concurrency": "N",
    "request_timeout": "SECONDS", "give_up_after": "SECONDS",
    "threads": "N", "executor": _one_of(EXECUTORS), "ray_address": "ADDRESS",
    "replicas": "N", "max_tokens_total": "TOKENS", "max_cost": "USD", "input_price": "USD",
    "output_price": "USD", "num_prompt_instructions": "N", "num_machine_instructions": "N",
    "request_batch_size": "N", "bootstrap_temperature": "FLOAT", "bootstrap_top_p": "FLOAT",
    "bootstrap_presence_penalty": "FLOAT", "bootstrap_max_tokens": "TOKENS",
    "similarity_threshold": "FLOAT", "max_requests": "N", "max_instances_per_task": "N",
    "instance_presence_penalty": "FLOAT", "instance_max_tokens_classification": "TOKENS",
    "instance_max_tokens_generation": "TOKENS", "answers": "K", "answer_temperature": "FLOAT",
    "answer_max_tokens": "TOKENS", "answer_shots": "N", "min_agreement": "FLOAT",
    "agreement_fit_tasks": "N", "agreement_fit_seeds": "PATH", "agreement_min_kept": "SHARE", "max_ifd": "FLOAT",
}


def _help(help_text: str, default: object) -> str:
    """The help with the option's real default. The parser's own default is None (not
    given: the config file, a resumed run or the dataclass decides), which the help
    formatter leaves out; a None default has nothing to show (the help says what it means)."""
    return help_text if default is None else f"{help_text} (default: {default})"


# Options that may be given several times; the values are joined by commas, which is
# how the configuration stores a list (so a single value reads exactly as before).
REPEATABLE = {"base_url", "decontaminate"}


class _JoinRepeated(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        previous = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{previous},{values}" if previous else values)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE",
        help="read the options below from a TOML or JSON file; keys are option names, "
             "e.g. num_instructions = 50 (or num-instructions); options given on the "
             "command line override the file, which overrides a resumed run's own")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, group, kind, help_text in OPTIONS:
        g = groups.setdefault(group, parser.add_argument_group(f"{group} options"))
        flag = "--" + name.replace("_", "-")
        default = _DEFAULTS[name]
        if kind is bool:
            g.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                           default=None, help=_help(help_text, default))
        elif name in REPEATABLE:
            g.add_argument(flag, dest=name, action=_JoinRepeated, default=None,
                           metavar=METAVARS[name], help=_help(help_text, default))
        else:
            g.add_argument(flag, dest=name, type=kind, default=None, metavar=METAVARS[name],
                           help=_help(help_text, default))


def config_from_args(args: argparse.Namespace, base: dict | None = None) -> RunConfig:
    """Options given on the command line override the ``--config`` file, which overrides
    ``base`` (a manifest's config), which overrides the defaults."""
    data = with_former_defaults(base) if base is not None else {}
    config_file = read_config_file(args.config) if getattr(args, "config", None) else None
    if config_file is not None:
        data.update(config_file.values)
    flags = {}
    for name, *_ in OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            flags[name] = value
    data.update(flags)
    try:
        return RunConfig.from_dict(data)
    except UserError as error:
        if config_file is None:
            raise
        raise config_file.blame(error, given_as_flags=set(flags)) from None


# The model options of the commands that only ask a model (eval ...): the same names and
# help as a run's, with their defaults given to the parser (no config file to merge).
ASKING_OPTIONS = ("model", "lora", "base_url", "api_key_env", "chat", "n_ctx",
                  "max_concurrency", "threads")


def add_model_options(parser: argparse.ArgumentParser, flag: str = "--model",
                      default: str = "smollm2") -> None:
    """The model options of a command that asks a model but is not a run; ``flag`` names
    the model option (``--judge`` for the judge)."""
    group = parser.add_argument_group("model options")
    for name, _, kind, help_text in OPTIONS:
        if name not in ASKING_OPTIONS:
            continue
        option = flag if name == "model" else "--" + name.replace("_", "-")
        value = default if name == "model" else _DEFAULTS[name]
        if kind is bool:
            group.add_argument(option, dest=name, action=argparse.BooleanOptionalAction,
                               default=value, help=help_text)
        elif name in REPEATABLE:
            group.add_argument(option, dest=name, action=_JoinRepeated, default=value,
                               metavar=METAVARS[name], help=help_text)
        else:
            group.add_argument(option, dest=name, type=kind, default=value,
                               metavar=METAVARS[name], help=help_text)


def model_options_from_args(args: argparse.Namespace) -> ModelOptions:
    """What :func:`add_model_options` read, checked like a run's options."""
    for name, least in (("max_concurrency", 1), ("n_ctx", 256), ("threads", 0)):
        value = getattr(args, name)
        if value < least:
            raise UserError(f"--{name.replace('_', '-')} must be at least {least}, got {value}")
    return ModelOptions(model=args.model, base_url=args.base_url,
                        api_key_env=args.api_key_env, n_ctx=args.n_ctx, lora=args.lora,
                        n_threads=args.threads or None, batch_size=args.max_concurrency)
