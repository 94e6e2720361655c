"""A backend that runs a model in-process with transformers (torch): ``--model transformers:PATH``.

PATH is anything :func:`selfinstruct.backends.hf_models.resolve_source` takes: a transformers
directory (e.g. ``selfinstruct finetune``'s ``OUT/merged``), a ``.gguf`` file, or a bundled
model name. It serves the pipeline, ``eval`` and the fine-tuning loop with one model
loader, on CPU or GPU.

Decoding follows the Backend contract the other backends keep:

- greedy requests (temperature 0) are generated in batches (left padding), which is where
  a CPU gains most; sampled requests go one at a time, each seeded with its own
  ``Sampling.seed``, so a result never depends on which requests shared its batch;
- ``stop`` strings end generation (transformers' ``stop_strings``) and are cut from the
  text, as the OpenAI API does;
- ``presence_penalty`` and ``frequency_penalty`` have the OpenAI meaning (subtracted from
  the logits of tokens already generated), by a logits processor, since transformers'
  ``repetition_penalty`` is a different, multiplicative rule;
- ``chat`` requests go through the tokenizer's chat template.

The identity (the cache key's model part) includes a sha256 of the weight files, so a
directory re-trained in place never serves stale cached answers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any

from selfinstruct.backends.base import BackendError, Completion, Request, scored
from selfinstruct.backends.hf_models import (
    ModelSource,
    load_causal_lm,
    require_torch,
    resolve_source,
)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def weights_digest(source: ModelSource) -> str:
    """sha256 over the weight files of a model (name and content, in name order)."""
    digest = hashlib.sha256()
    if source.gguf_file:
        files = [source.directory / source.gguf_file]
    else:
        files = sorted(p for p in source.directory.iterdir()
                       if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json"))
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _penalty_processor(presence: float, frequency: float, prompt_length: int):
    """OpenAI-style presence/frequency penalties over the generated tokens only."""
    torch, transformers = require_torch()
    logits_processor: Any = transformers.LogitsProcessor  # imported lazily

    class OpenAIPenalties(logits_processor):
        def __call__(self, input_ids, scores):
            generated = input_ids[:, prompt_length:]
            if generated.shape[1] == 0:
                return scores
            counts = torch.zeros_like(scores)
            counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            return scores - frequency * counts - presence * (counts > 0).to(scores.dtype)

    return OpenAIPenalties()


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one was found."""
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


class TransformersBackend:
    # a scoring request's choice is scored token by token, whole (the curated recipe's
    # round-trip labels and IFD need it; a server's first-token scores cannot)
    scores_whole_texts = True

    def __init__(self, spec: str, *, batch_size: int = 8, device: str | None = None,
                 n_ctx: int = 4096, model_name: str | None = None):
        self.source = resolve_source(spec)
        self.model_name = model_name or spec
        self.batch_size = max(1, batch_size)
        self.n_ctx = n_ctx
        self.sha256 = weights_digest(self.source)
        self.model, self.tokenizer = load_causal_lm(self.source, device=device)
        self.device = next(self.model.parameters()).device
        self._lock = threading.Lock()

    @property
    def identity(self) -> dict:
        return {"backend": "transformers", "model": self.model_name, "sha256": self.sha256,
                "n_ctx": self.n_ctx}

    def _score(self, request: Request) -> Completion:
        """Log-probability of each choice after the prompt: one forward pass per choice."""
        torch, _ = require_torch()
        started = time.perf_counter()
        prompt_ids = self.tokenizer(request.prompt, add_special_tokens=True)["input_ids"]
        if not prompt_ids:  # an empty prompt: from the start of a document
            start = self.tokenizer.bos_token_id
            prompt_ids = [start if start is not None else self.tokenizer.eos_token_id]
        logprobs: dict[str, float] = {}
        for choice in request.choices:
            choice_ids = self.tokenizer(choice, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt_ids + choice_ids], device=self.device)
            with torch.no_grad():
                logits = self.model(input_ids=ids).logits[0].float()
            log_softmax = torch.log_softmax(logits[len(prompt_ids) - 1:-1], dim=-1)
            picked = log_softmax[torch.arange(len(choice_ids)), torch.tensor(choice_ids)]
            logprobs[choice] = float(picked.sum())
        return scored(logprobs, prompt_tokens=len(prompt_ids),
                      seconds=time.perf_counter() - started)

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        with self._lock:
            results: list[Completion | None] = [None] * len(requests)
            groups: dict[tuple, list[int]] = {}
            for i, r in enumerate(requests):
                if r.choices:
                    results[i] = self._score(r)
                elif r.sampling.temperature == 0:
                    key = (r.chat, r.sampling.presence_penalty, r.sampling.frequency_penalty,
                           r.sampling.stop)
                    groups.setdefault(key, []).append(i)
            for group in groups.values():
                for start in range(0, len(group), self.batch_size):
                    chunk = group[start:start + self.batch_size]
                    for i, completion in zip(chunk,
                                             self._generate([requests[i] for i in chunk])):
                        results[i] = completion
            for i, request in enumerate(requests):
                if results[i] is None:
                    results[i] = self._generate([request])[0]
            return results  # type: ignore[return-value]

    def _prompt_text(self, request: Request) -> str:
        if request.chat and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": request.prompt}], tokenize=False,
                add_generation_prompt=True)
        return request.prompt

    def _generate(self, batch: Sequence[Request]) -> list[Completion]:
        """One generate() call. The requests share everything in their sampling but
        ``max_tokens`` (and the seed, when there is one request)."""
        torch, transformers = require_torch()
        s = batch[0].sampling
        texts = [self._prompt_text(r) for r in batch]
        self.tokenizer.padding_side = "left"
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True,
                                 add_special_tokens=not batch[0].chat)
        prompt_length = encoded["input_ids"].shape[1]
        lengths = encoded["attention_mask"].sum(dim=1).tolist()
        if prompt_length >= self.n_ctx:
            return [Completion.failed(f"prompt has {n} tokens, more than the context window of "
                                      f"{self.n_ctx}") for n in lengths]
        max_new = max(r.sampling.max_tokens for r in batch)
        max_new = min(max_new, self.n_ctx - prompt_length)
        kwargs: dict = {"max_new_tokens": max_new, "pad_token_id": self.tokenizer.pad_token_id}
        if s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p, top_k=0)
            torch.manual_seed(s.seed if s.seed is not None else 0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if s.presence_penalty or s.frequency_penalty:
            kwargs["logits_processor"] = transformers.LogitsProcessorList(
                [_penalty_processor(s.presence_penalty, s.frequency_penalty, prompt_length)])
        if s.stop:
            kwargs.update(stop_strings=list(s.stop), tokenizer=self.tokenizer)
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                output = self.model.generate(**encoded.to(self.device), **kwargs)
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"transformers generate failed: {exc}") from None
        seconds = (time.perf_counter() - started) / len(batch)
        eos_ids = self._eos_ids()
        results = []
        for row, request, n_prompt in zip(output, batch, lengths):
            new_tokens = row[prompt_length:].tolist()
            ended = False
            for k, token in enumerate(new_tokens):
                if token in eos_ids:
                    new_tokens, ended = new_tokens[:k], True
                    break
            text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, request.sampling.stop)
            limit = request.sampling.max_tokens
            if len(new_tokens) > limit:  # a batch mate wanted more tokens than this request
                new_tokens = new_tokens[:limit]
                text, stopped = cut_at_stop(
                    self.tokenizer.decode(new_tokens, skip_special_tokens=True),
                    request.sampling.stop)
            finish = "stop" if (ended or stopped) else "length"
            results.append(Completion(text=text, finish_reason=finish,
                                      prompt_tokens=int(n_prompt),
                                      completion_tokens=len(new_tokens), seconds=seconds))
        return results

    def _eos_ids(self) -> set[int]:
        ids = set()
        config_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (config_eos, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(v for v in value if isinstance(v, int))
        return ids

