"""selfinstruct: Self-Instruct (Wang et al., ACL 2023) as a library and CLI.

Importing this package is cheap: names are loaded on first use, and no model runtime
(llama_cpp, torch, transformers, ray) is imported until a backend that needs it opens.

    from selfinstruct import RunConfig, open_context, run_pipeline

    ctx = open_context("runs/demo", RunConfig(num_instructions=20))
    summary = run_pipeline(ctx)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "RunConfig": "selfinstruct.run.config",
    "open_context": "selfinstruct.run.context",
    "RunContext": "selfinstruct.run.context",
    "run_pipeline": "selfinstruct.run.pipeline",
    "summarize": "selfinstruct.run.pipeline",
    "bootstrap": "selfinstruct.stages.bootstrap",
    "classify": "selfinstruct.stages.classify",
    "generate_instances": "selfinstruct.stages.instances",
    "postprocess": "selfinstruct.stages.postprocess",
    "export": "selfinstruct.stages.export",
    "load_seeds": "selfinstruct.seeds",
    "PromptTemplates": "selfinstruct.prompts",
    "open_backend": "selfinstruct.backends.registry",
    "Request": "selfinstruct.backends.base",
    "Sampling": "selfinstruct.backends.base",
    "Completion": "selfinstruct.backends.base",
    "run_requests": "selfinstruct.backends.requests",
    "NoveltyIndex": "selfinstruct.novelty.index",
    "Task": "selfinstruct.records",
    "Instance": "selfinstruct.records",
    "UserError": "selfinstruct.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]  # noqa: PLE0604 - all strings


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'selfinstruct' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
