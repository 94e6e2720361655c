"""The embedded backend: a GGUF model run in process by llama.cpp (``llama-cpp-python``).

Two things make it more than a thin wrapper:

- **Prefix reuse.** Classification and instance prompts share long few-shot templates.
  When a request carries a ``prefix``, the KV cache of that prefix is computed once and
  kept; each call cuts the context back to it and pays prefill only for its own tokens.
  (Saving and restoring whole llama.cpp states was tried first: copying the state, logits
  buffer included, cost more than the prefill it saved.)
- **Determinism.** llama.cpp silently reuses the KV cache of whatever it evaluated last,
  and evaluating a prompt in different chunks changes the low bits of the logits, so the
  same prompt and seed can give different text depending on the previous call. Here every
  call starts from a fixed point: the saved prefix state, or an empty context. The same
  request therefore always gives the same completion, whatever came before it.

``Request.chat`` formats the prompt with the model's own chat template (from the GGUF
metadata); such calls start from an empty context and use no prefix.

Sampling follows OpenAI semantics: llama.cpp's own extras (top-k, min-p, repeat penalty)
are switched off, so the same parameters mean the same thing on every backend.
One model instance runs one request at a time (a lock guards it).

``batch_size`` > 1 decodes generation requests together, in consecutive groups of that
size in the order given (``batch_decode.py``): more tokens per second on a CPU (see
``benchmarks/batched_decoding.py``), and the same group always gives the same
completions, but a greedy completion can differ from the solo one where two candidates are
nearly tied, so ``identity`` (the cache key) then names the batch size. Chat and scoring
requests always take the solo path.

Threads: ``n_threads`` fixes the count; without it the count follows the free cores and
is re-checked as the load changes (``threads.py``). It never changes a result.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selfinstruct.backends.base import BackendError, Completion, Request, scored
from selfinstruct.backends.batch_decode import BatchDecoder, BatchItem, DecodeStats
from selfinstruct.backends.threads import ThreadPolicy
from selfinstruct.errors import UserError


@contextlib.contextmanager
def _quiet_stderr():
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no fd 2
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# A call to a batched backend carries this many batches' worth of requests: enough for
# finished sequences to be replaced while the others decode, few enough that a resumed run
# re-decodes little.
GROUP_BATCHES = 4
# The batch context gives each sequence room in steps of this many tokens.
BATCH_CTX_STEP = 512
BATCH_CONTEXTS = 3


class LlamaCppBackend:
    # a scoring request's choice is scored token by token, whole (the curated recipe's
    # round-trip labels and IFD need it; a server's first-token scores cannot)
    scores_whole_texts = True

    def __init__(self, model_path: str | Path, *, model_name: str | None = None,
                 n_ctx: int = 4096, n_threads: int | None = None, sha256: str | None = None,
                 prefix_cache: bool = True, lora_path: str | Path | None = None,
                 lora_sha256: str | None = None, batch_size: int = 1):
        try:
            import llama_cpp
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise UserError(
                "the embedded backend needs llama-cpp-python: pip install llama-cpp-python"
            ) from exc
        self.model_path = Path(model_path)
        self.model_name = model_name or self.model_path.name
        self.sha256 = sha256
        # a llama.cpp LoRA adapter (GGUF) applied on top of the model, e.g. one written by
        # `selfinstruct finetune`; its digest is part of the identity (the cache key)
        self.lora_path = Path(lora_path) if lora_path else None
        self.lora_sha256 = lora_sha256
        self.prefix_cache = prefix_cache
        if batch_size < 1:
            raise UserError("the batch size must be at least 1")
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._prefix_tokens: dict[str, list[int]] = {}
        self._active_prefix: str | None = None
        # batch contexts by the room each sequence has, created when first needed
        self._decoders: dict[int, BatchDecoder] = {}
        self.decode_stats = DecodeStats()  # all batch contexts' steps and prompts
        self.threads = ThreadPolicy(n_threads)
        self._applied_threads = self.threads.threads
        try:
            with _quiet_stderr():  # llama.cpp prints load notes to fd 2 even when quiet
                self.llm = self._load(llama_cpp, n_ctx, self._applied_threads)
        except ValueError as exc:
            raise UserError(f"--model: llama.cpp cannot load {self.model_path}: {exc}") from None
        self.n_ctx = n_ctx

    def _load(self, llama_cpp, n_ctx: int, n_threads: int):
        return llama_cpp.Llama(
            model_path=str(self.model_path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=512,
            seed=0,
            verbose=False,
            **({"lora_path": str(self.lora_path)} if self.lora_path else {}),
        )

    @property
    def identity(self) -> dict:
        return {
            "backend": "llama.cpp",
            "model": self.model_name,
            "sha256": self.sha256,
            "n_ctx": self.n_ctx,
            **({"lora_sha256": self.lora_sha256} if self.lora_path else {}),
            **({"batch_size": self.batch_size} if self.batch_size > 1 else {}),
        }

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        with self._lock:
            if self.batch_size > 1:
                return self._complete_grouped(requests)
            results = []
            for request in requests:
                self._refresh_threads()
                results.append(self._one(request))
            return results

    def close(self) -> None:
        """Free the batch context (the model itself goes with the ``Llama`` object)."""
        with self._lock:
            for decoder in self._decoders.values():
                decoder.close()
            self._decoders.clear()

    # -- threads ---------------------------------------------------------------------------

    def _refresh_threads(self) -> None:
        """Apply the policy's thread count to the live contexts when it changed (checked
        between requests and between decode steps; cheap when nothing is due)."""
        import llama_cpp

        n = self.threads.refresh()
        if n == self._applied_threads:
            return
        llama_cpp.llama_set_n_threads(self.llm._ctx.ctx, n, n)
        for decoder in self._decoders.values():
            decoder.set_threads(n)
        self._applied_threads = n

    def _threads_criterion(self) -> Callable[[Any, Any], bool]:
        """A stopping criterion that never stops: it re-checks the thread count between
        the decode steps of a long solo generation."""
        def check(_input_ids, _logits) -> bool:
            self._refresh_threads()
            return False
        return check

    # -- batched generation ----------------------------------------------------------------

    @staticmethod
    def _batchable(request: Request) -> bool:
        return not request.chat and not request.choices

    @property
    def group_size(self) -> int:
        """How many requests the request loop should send in one call: ``batch_size``
        decode at a time, and the group's next request takes the slot of one that ends."""
        return self.batch_size * GROUP_BATCHES if self.batch_size > 1 else 1

    def _complete_grouped(self, requests: Sequence[Request]) -> list[Completion]:
        """The generation requests of this call decode together, ``batch_size`` at a time,
        in the order given (the call's requests alone decide which run beside which);
        chat, scoring and a lone generation request take the solo path."""
        results: list[Completion | None] = [None] * len(requests)
        positions = [i for i, r in enumerate(requests) if self._batchable(r)]
        if len(positions) > 1:
            for i, completion in zip(positions, self._batch([requests[i] for i in positions])):
                results[i] = completion
        for i, request in enumerate(requests):
            if results[i] is None:
                self._refresh_threads()
                results[i] = self._one(request)
        return [r for r in results if r is not None]

    def _batch(self, group: list[Request]) -> list[Completion]:
        """One group through the batch decoder; a prompt too long for the context fails
        alone, as on the solo path. The group's requests are split by the room they need
        (:meth:`_room`), each part decoded in a context of that size, in the group's order:
        a few long prompts do not slow down every sequence of the group."""
        items: list[BatchItem | None] = [self._batch_item(r) for r in group]
        parts: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            if item is not None:
                parts.setdefault(self._room(item), []).append(i)
        results: dict[int, Completion] = {}
        try:
            for room, members in parts.items():
                ready = [items[i] for i in members]
                decoded = self._batch_decoder(room).generate(
                    [item for item in ready if item is not None], self._refresh_threads)
                results.update(zip(members, decoded))
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp failed: {exc}") from None
        return [results[i] if i in results else self._too_long(r) for i, r in enumerate(group)]

    def _room(self, item: BatchItem) -> int:
        """The tokens a sequence needs (its prompt and its new tokens), rounded up to
        ``BATCH_CTX_STEP``."""
        needed = len(item.tokens) + item.max_tokens
        return min(self.n_ctx, -(-needed // BATCH_CTX_STEP) * BATCH_CTX_STEP)

    def _too_long(self, request: Request) -> Completion:
        return Completion.failed(f"prompt has {len(self.tokenize(request.prompt))} tokens, "
                                 f"more than the context window of {self.n_ctx}")

    def _batch_item(self, request: Request) -> BatchItem | None:
        """The request, tokenized, with its prefix tokens where the solo path would reuse
        the prefix (same rule as ``_start_from``); None when the prompt fills the context."""
        tokens = self.tokenize(request.prompt)
        room = self.n_ctx - len(tokens)
        if room <= 0:
            return None
        prefix = None
        if self.prefix_cache and request.prefix:
            prefix_tokens = self._prefix_tokens.get(request.prefix)
            if prefix_tokens is None:
                prefix_tokens = self._prefix_tokens[request.prefix] = self.tokenize(
                    request.prefix)
            if len(tokens) > len(prefix_tokens) and tokens[:len(prefix_tokens)] == prefix_tokens:
                prefix = tuple(prefix_tokens)
        wanted = request.sampling.max_tokens
        # like llama-cpp-python, max_tokens <= 0 means as many as the context holds
        return BatchItem(tokens, request.sampling, min(wanted, room) if wanted > 0 else room,
                         prefix)

    def _batch_decoder(self, room: int) -> BatchDecoder:
        """The batch context whose sequences have ``room`` tokens each: ``batch_size``
        sequences plus one for the shared prefix. Attention costs grow with the room a
        sequence is given (Gemma's sliding-window layers keep their whole cache here, so
        that a prefix can be copied): on Gemma SuperNI prompts a 16-sequence step took
        242 ms with ``n_ctx`` (4096) per sequence and 131 ms with 1024. The room follows
        from each request alone, so a request always decodes in the same context; the
        contexts of the last ``BATCH_CONTEXTS`` sizes are kept."""
        decoder = self._decoders.pop(room, None)
        if decoder is None:
            with _quiet_stderr():
                decoder = BatchDecoder(self.llm, self.batch_size, room, self._applied_threads,
                                       self.decode_stats)
        self._decoders[room] = decoder  # the most recently used last
        while len(self._decoders) > BATCH_CONTEXTS:
            oldest = next(iter(self._decoders))
            self._decoders.pop(oldest).close()
        return decoder

    def _start_from(self, tokens: list[int], prefix: str | None) -> None:
        """Put the model in a fixed state: right after ``prefix`` if usable, else empty.

        The prefix is always evaluated the same way (alone, from position 0, in chunks of
        ``n_batch``), so its KV cache is bit-identical whenever it is rebuilt. Before each
        call the context is cut back to the prefix, so the rest of the prompt is always
        evaluated in one go from the same point. Requests that share a prefix should come
        together: switching prefixes re-evaluates the new one.
        """
        if self.prefix_cache and prefix:
            prefix_tokens = self._prefix_tokens.get(prefix)
            if prefix_tokens is None:
                prefix_tokens = self._prefix_tokens[prefix] = self.tokenize(prefix)
            usable = (len(tokens) > len(prefix_tokens)
                      and tokens[: len(prefix_tokens)] == prefix_tokens)
            if usable:
                if self._active_prefix != prefix:
                    self.llm.reset()
                    self.llm.eval(prefix_tokens)
                    self._active_prefix = prefix
                self.llm.n_tokens = len(prefix_tokens)  # forget what followed it last time
                return
        self._active_prefix = None
        self.llm.reset()

    def _first_paragraph_done(self, prompt_length: int):
        """A llama.cpp stopping criterion: true once the generated text has a non-blank
        paragraph followed by a blank line, after which ``text.strip().split("\n\n")[0]``
        can no longer change. Greedy or sampled, the tokens before it are the same."""
        import llama_cpp

        def done(input_ids, _logits) -> bool:
            generated = self.llm.detokenize(list(input_ids[prompt_length:]))
            # str.lstrip, not bytes.lstrip: it must strip exactly what str.strip() strips
            return "\n\n" in generated.decode("utf-8", errors="ignore").lstrip()

        return llama_cpp.StoppingCriteriaList([done])

    def _score(self, request: Request, tokens: list[int]) -> Completion:
        """Log-probability of each choice as the continuation of the prompt, from the same
        fixed starting point as generation (the prefix state, or empty), so a score does
        not depend on what ran before it. A choice's first token is read from the prompt's
        last logits; the rest of its tokens are evaluated together after the prompt, with
        logits for each (one decode per ``n_batch`` tokens, not one per token). The context
        is cut back to the prompt between choices."""
        import numpy as np

        started = time.perf_counter()
        self._start_from(tokens, request.prefix)
        self.llm.eval(tokens[self.llm.n_tokens:])
        end = len(tokens)
        first = self._log_softmax(self._last_logits(np), np)
        logprobs: dict[str, float] = {}
        for choice in request.choices:
            ids = self.llm.tokenize(choice.encode("utf-8"), add_bos=False, special=False)
            if not ids:
                raise BackendError(f"choice {choice!r} has no tokens")
            if end + len(ids) > self.n_ctx:
                raise BackendError(f"choice {choice[:40]!r}... does not fit the context window")
            total = float(first[ids[0]])
            self.llm.n_tokens = end
            total += self._continuation_logprob(ids, end, np)
            logprobs[choice] = total
        self.llm.n_tokens = end
        return scored(logprobs, prompt_tokens=len(tokens),
                      seconds=time.perf_counter() - started)

    @staticmethod
    def _log_softmax(logits, np):
        top = logits.max()
        return logits - top - np.log(np.exp(logits - top).sum())

    def _continuation_logprob(self, ids: list[int], end: int, np) -> float:
        """The summed log-probability of ``ids[1:]``, each after the tokens before it,
        evaluating ``ids[:-1]`` after position ``end`` with logits for every token."""
        import llama_cpp

        if len(ids) < 2:
            return 0.0
        self.llm._ctx.kv_cache_seq_rm(-1, end, -1)
        feed, targets = ids[:-1], ids[1:]
        total, n_past, step = 0.0, end, self.llm.n_batch
        for start in range(0, len(feed), step):
            chunk = feed[start:start + step]
            self.llm._batch.set_batch(batch=chunk, n_past=n_past, logits_all=True)
            self.llm._ctx.decode(self.llm._batch)
            for i in range(len(chunk)):
                pointer = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, i)
                logits = np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),)).astype(
                    np.float64)
                total += float(self._log_softmax(logits, np)[targets[start + i]])
            n_past += len(chunk)
        return total

    def _last_logits(self, np):
        """The logits after the last evaluated token (llama.cpp keeps only those when the
        model is not loaded with ``logits_all``)."""
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),)).astype(np.float64)

    def _one(self, request: Request) -> Completion:
        import llama_cpp

        s = request.sampling
        tokens = self.tokenize(request.prompt)
        if request.choices and not tokens:
            # an empty prompt scores the choices from the start of a document: the model's
            # BOS token, or its end-of-text token where it has no BOS (SmolLM2)
            bos = self.llm.token_bos()
            tokens = [bos if bos >= 0 else self.llm.token_eos()]
        if request.choices:
            if len(tokens) + 8 > self.n_ctx:
                return Completion.failed(
                    f"prompt has {len(tokens)} tokens, more than the context window of "
                    f"{self.n_ctx}")
            try:
                return self._score(request, tokens)
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"llama.cpp failed: {exc}") from None
        room = self.n_ctx - len(tokens) - (64 if request.chat else 0)  # chat template margin
        if room <= 0:
            return Completion.failed(
                f"prompt has {len(tokens)} tokens, more than the context window of {self.n_ctx}"
            )
        params: dict[str, Any] = {
            "max_tokens": min(s.max_tokens, room), "temperature": s.temperature,
            "top_p": s.top_p, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0,
            "presence_penalty": s.presence_penalty, "frequency_penalty": s.frequency_penalty,
            "stop": list(s.stop) or None, "seed": s.seed if s.seed is not None else 0,
        }
        started = time.perf_counter()
        try:
            if request.chat:  # the model's own chat template, from the GGUF metadata
                self._active_prefix = None
                self.llm.reset()
                out = self.llm.create_chat_completion(
                    messages=[{"role": "user", "content": request.prompt}], **params)
                choice = out["choices"][0]
                text = (choice.get("message") or {}).get("content") or ""
            else:
                self._start_from(tokens, request.prefix)
                criteria = llama_cpp.StoppingCriteriaList()
                if self.threads.adaptive:
                    criteria.append(self._threads_criterion())
                if s.first_paragraph_only:
                    criteria.extend(self._first_paragraph_done(len(tokens)))
                if criteria:
                    params["stopping_criteria"] = criteria
                out = self.llm.create_completion(prompt=tokens, **params)
                choice = out["choices"][0]
                text = choice.get("text", "")
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp failed: {exc}") from None
        usage = out.get("usage", {})
        return Completion(
            text=text,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            prompt_tokens=usage.get("prompt_tokens", len(tokens)),
            completion_tokens=usage.get("completion_tokens", 0),
            seconds=time.perf_counter() - started,
        )
