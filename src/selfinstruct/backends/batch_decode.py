"""Batched decoding for the embedded backend: B generation requests advanced together.

A decode step of one token pays for reading every weight and for waking the threads; a
step of B tokens (one per sequence) pays for those once. On SmolLM2 at 1 thread, one
token takes about 15 ms and 16 tokens of 16 sequences about 150 ms, so the gain is
bounded by the arithmetic itself on a CPU: between 1.3x and 2x more tokens per second was
measured on 2 shared cores (``benchmarks/batched_decoding.py``).

How a group is decoded, in a llama.cpp context of its own (``BatchDecoder``):

- **Per-sequence KV.** The context has ``n_seq + 1`` sequences with ``kv_unified`` off, so
  each has its own KV stream of ``per_seq_ctx`` cells: a sequence attends only to its own
  stream and never to its neighbours' padding or garbage.
- **Prefix reuse.** A usable ``prefix`` is evaluated once, alone, from position 0 in chunks
  of ``n_batch`` (exactly as the solo path does), into a dedicated *holder* sequence that
  nothing else writes to; it is copied to every sequence that starts with it
  (``llama_memory_seq_cp``). The holder keeps its prefix from one group to the next, so a
  stage whose requests share one few-shot template evaluates it once.
- **Prompts.** Each sequence's remaining prompt tokens are then evaluated alone, so the
  state right after a prompt is the solo path's, bit for bit: the first token of every
  greedy completion is the solo one. Later tokens come from steps that evaluate B tokens at
  once, which can move the low bits of the logits, so a greedy completion can part from
  the solo one where two candidates are nearly tied.
- **Determinism.** Every group starts from a fixed state (all working sequences emptied;
  the holder empty or holding a prefix that is always built the same way), and sampling
  uses a numpy generator seeded per sequence, so the same group (same requests, same
  order) gives byte-identical completions whatever ran before.

Sampling follows OpenAI semantics, as the solo path does: presence and frequency
penalties over the generated tokens, then temperature (0: greedy argmax), then top-p.
"""

from __future__ import annotations

import ctypes
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selfinstruct.backends.base import Completion, Sampling

# Candidates examined before falling back to a full sort of the vocabulary for top-p;
# the nucleus of a trained model almost always fits in far fewer.
_TOP_P_CANDIDATES = 1024


def penalized(logits: np.ndarray, counts: dict[int, int], presence: float,
              frequency: float) -> np.ndarray:
    """OpenAI's penalties: ``logit[j] -= presence * [count_j > 0] + frequency * count_j``,
    where ``count_j`` is how often token j was generated (the prompt does not count)."""
    if not counts or (presence == 0.0 and frequency == 0.0):
        return logits
    out = np.array(logits, dtype=np.float64)
    ids = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
    seen = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    out[ids] -= presence + frequency * seen
    return out


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities of ``scores / temperature``, in float64 so that the cumulative sums
    of top-p are stable."""
    scaled = np.asarray(scores, dtype=np.float64) / temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    return probs / probs.sum()


def nucleus(probs: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest set of tokens, likeliest first (ties by token id), whose probabilities
    add up to at least ``top_p``; with their probabilities renormalised.

    Only the ``_TOP_P_CANDIDATES`` likeliest tokens are sorted unless they do not reach
    ``top_p``: a full sort of a 262k vocabulary per step would cost more than the step.
    """
    n = len(probs)
    k = min(n, _TOP_P_CANDIDATES)
    candidates = np.argpartition(-probs, k - 1)[:k] if k < n else np.arange(n)
    order = candidates[np.lexsort((candidates, -probs[candidates]))]
    cumulative = np.cumsum(probs[order])
    if cumulative[-1] < top_p and k < n:
        order = np.lexsort((np.arange(n), -probs))
        cumulative = np.cumsum(probs[order])
    keep = min(int(np.searchsorted(cumulative, top_p, side="left")) + 1, len(order))
    kept = probs[order[:keep]]
    return order[:keep], kept / kept.sum()


class TokenSampler:
    """The sampling state of one sequence: its parameters, the counts of the tokens it has
    generated (for the penalties) and its own random generator, seeded from
    ``Sampling.seed`` (0 when unset, like the solo path), so a sampled completion depends
    on its seed and never on its neighbours in the batch."""

    def __init__(self, sampling: Sampling):
        self.sampling = sampling
        self.counts: dict[int, int] = {}
        self.rng = np.random.default_rng(sampling.seed if sampling.seed is not None else 0)

    def pick(self, logits: np.ndarray) -> int:
        s = self.sampling
        scores = penalized(logits, self.counts, s.presence_penalty, s.frequency_penalty)
        if s.temperature <= 0.0:
            return int(np.argmax(scores))  # the first of equal maxima, like llama.cpp
        probs = softmax(scores, s.temperature)
        if s.top_p < 1.0:
            ids, probs = nucleus(probs, s.top_p)
        else:
            ids = np.arange(len(probs))
        return int(ids[self._draw(probs)])

    def _draw(self, probs: np.ndarray) -> int:
        """One index drawn from ``probs`` with a single uniform number (a fixed use of the
        generator, so the draw sequence depends only on the seed)."""
        cumulative = np.cumsum(probs)
        u = self.rng.random() * cumulative[-1]
        return min(int(np.searchsorted(cumulative, u, side="right")), len(probs) - 1)

    def accept(self, token: int) -> None:
        self.counts[token] = self.counts.get(token, 0) + 1


def earliest_stop(text: str, stops: Sequence[str]) -> int:
    """Where the first stop string in ``text`` begins, -1 if none occurs."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else -1


@dataclass
class DecodeStats:
    """Where a batch context's time went, summed over its groups: decode steps (how many,
    how many sequences they carried, their wall time) and prompt evaluation (tokens and wall
    time, shared prefixes apart). ``sequences / steps`` is the mean occupancy of a step,
    the figure batching lives on."""

    steps: int = 0
    sequences: int = 0
    step_seconds: float = 0.0
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    prefix_tokens: int = 0
    prefix_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"steps": self.steps, "sequences": self.sequences,
                "mean_occupancy": round(self.sequences / max(self.steps, 1), 2),
                "step_seconds": round(self.step_seconds, 2),
                "prompt_tokens": self.prompt_tokens,
                "prompt_seconds": round(self.prompt_seconds, 2),
                "prefix_tokens": self.prefix_tokens,
                "prefix_seconds": round(self.prefix_seconds, 2)}


@dataclass
class BatchItem:
    """One generation request, tokenized. ``prefix`` is its prompt's first tokens when the
    caller wants them shared (evaluated once, copied); None evaluates the whole prompt."""

    tokens: list[int]
    sampling: Sampling
    max_tokens: int
    prefix: tuple[int, ...] | None = None


@dataclass
class _Sequence:
    """A sequence being decoded: where it stands and what it has produced."""

    seq_id: int
    item: BatchItem
    sampler: TokenSampler
    n_past: int = 0
    generated: list[int] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    cut: int = -1  # where a stop string begins in the text, -1 if none
    finish: str | None = None
    next_token: int = -1

    def text(self) -> str:
        return self.data.decode("utf-8", errors="ignore")


class BatchDecoder:
    """A llama.cpp context for up to ``n_seq`` sequences of ``per_seq_ctx`` tokens each,
    created from the model of a loaded ``llama_cpp.Llama`` (same settings, LoRA adapter
    included), plus one holder sequence for a shared prefix."""

    def __init__(self, llm: Any, n_seq: int, per_seq_ctx: int, n_threads: int,
                 stats: DecodeStats | None = None):
        import llama_cpp
        from llama_cpp import _internals

        self.llm = llm
        self.n_seq = n_seq
        self.holder = n_seq  # the last sequence id keeps the shared prefix
        self.n_batch = int(llm.n_batch)
        self.n_vocab = int(llm.n_vocab())
        self.vocab = llm._model.vocab
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_seq_max = n_seq + 1
        params.n_ctx = per_seq_ctx * (n_seq + 1)
        params.kv_unified = False  # one KV stream per sequence: n_ctx / n_seq_max cells each
        params.swa_full = True  # copies between streams need full (non-sliding) caches
        params.n_threads = params.n_threads_batch = n_threads
        self._context = _internals.LlamaContext(model=llm._model, params=params,
                                                verbose=False)
        self.ctx = self._context.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.per_seq_ctx = int(llama_cpp.llama_n_ctx_seq(self.ctx))
        if self.per_seq_ctx < per_seq_ctx:
            raise ValueError(f"llama.cpp gave {self.per_seq_ctx} tokens per sequence, "
                             f"{per_seq_ctx} were asked for")
        self._set_lora(llama_cpp)
        self._batch = llama_cpp.llama_batch_init(max(self.n_batch, n_seq), 0, 1)
        self._held: tuple[int, ...] | None = None
        self.stats = stats if stats is not None else DecodeStats()  # may be shared

    def _set_lora(self, llama_cpp: Any) -> None:
        """The solo context's LoRA adapter applies here too, at the same scale."""
        adapter = getattr(self.llm, "_lora_adapter", None)
        if adapter is None:
            return
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(self.llm.lora_scale)
        if llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, scales):
            raise RuntimeError("cannot set the LoRA adapter on the batch context")

    def close(self) -> None:
        import llama_cpp

        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        self._context.close()

    def set_threads(self, n: int) -> None:
        import llama_cpp

        llama_cpp.llama_set_n_threads(self.ctx, n, n)

    # -- the low-level steps --------------------------------------------------------------

    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` of (token, position, sequence, wants logits) entries."""
        import llama_cpp

        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (token, pos, seq_id, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq_id
            batch.logits[i] = logits
        code = llama_cpp.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")

    def _eval_alone(self, seq_id: int, tokens: Sequence[int], start: int) -> None:
        """Evaluate ``tokens`` of one sequence from position ``start`` in chunks of
        ``n_batch``, logits for the last token only: the solo path's ``Llama.eval``."""
        for i in range(0, len(tokens), self.n_batch):
            chunk = tokens[i:i + self.n_batch]
            last = i + len(chunk) == len(tokens)
            self._decode([(t, start + i + k, seq_id, last and k == len(chunk) - 1)
                          for k, t in enumerate(chunk)])

    def _logits(self, index: int) -> np.ndarray:
        """The logits of the ``index``-th entry of the last decode (a view, valid until the
        next decode)."""
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def _reset(self, n: int) -> None:
        """The fixed starting point of every group: working sequences empty, the holder
        as it is (its prefix, if any, is always built the same way)."""
        import llama_cpp

        for seq_id in range(n):
            llama_cpp.llama_memory_seq_rm(self.memory, seq_id, -1, -1)

    def _hold(self, prefix: tuple[int, ...]) -> None:
        """Put ``prefix`` in the holder sequence unless it is already there."""
        import llama_cpp

        if self._held == prefix:
            return
        self._held = None
        started = time.perf_counter()
        llama_cpp.llama_memory_seq_rm(self.memory, self.holder, -1, -1)
        self._eval_alone(self.holder, prefix, 0)
        self._held = prefix
        self.stats.prefix_tokens += len(prefix)
        self.stats.prefix_seconds += time.perf_counter() - started

    # -- a group ---------------------------------------------------------------------------

    def generate(self, items: Sequence[BatchItem],
                 between_steps: Callable[[], None] | None = None) -> list[Completion]:
        """Complete ``items`` with at most ``n_seq`` sequences decoding at a time; one
        completion each, in order. A sequence that finishes frees its slot, and the next
        item in order starts there (its prompt evaluated alone, then it joins the steps),
        so a long completion does not leave the other slots idle. Which item runs in which
        slot and beside which others follows from the items alone, so the same items
        always give the same completions. ``between_steps`` runs before every decode step
        (the backend re-checks its thread count there)."""
        started = time.perf_counter()
        slots = min(len(items), self.n_seq)
        self._reset(slots)
        seqs = [_Sequence(-1, item, TokenSampler(item.sampling)) for item in items]
        waiting = deque(seqs)
        free = list(range(slots))
        active: list[_Sequence] = []
        self._admit(waiting, free, active)
        while active:
            if between_steps is not None:
                between_steps()
            step_started = time.perf_counter()
            self._decode([(s.next_token, s.n_past, s.seq_id, True) for s in active])
            self.stats.steps += 1
            self.stats.sequences += len(active)
            self.stats.step_seconds += time.perf_counter() - step_started
            for index, seq in enumerate(active):
                seq.n_past += 1
                self._advance(seq, self._logits(index))
            free += sorted(s.seq_id for s in active if s.finish is not None)
            active[:] = [s for s in active if s.finish is None]
            self._admit(waiting, free, active)
        share = (time.perf_counter() - started) / max(len(items), 1)
        return [self._completion(s, share) for s in seqs]

    def _admit(self, waiting: deque[_Sequence], free: list[int],
               active: list[_Sequence]) -> None:
        """Start waiting sequences, in order, in the free slots (lowest first): the shared
        prefix copied from the holder, the prompt's own tokens evaluated alone, the first
        token sampled. One that is done at once gives its slot to the next."""
        import llama_cpp

        free.sort()
        while waiting and free:
            seq = waiting.popleft()
            seq.seq_id = free.pop(0)
            llama_cpp.llama_memory_seq_rm(self.memory, seq.seq_id, -1, -1)
            prefix = seq.item.prefix
            if prefix:
                self._hold(prefix)
                llama_cpp.llama_memory_seq_cp(self.memory, self.holder, seq.seq_id, -1, -1)
                seq.n_past = len(prefix)
            tokens = seq.item.tokens
            started = time.perf_counter()
            self._eval_alone(seq.seq_id, tokens[seq.n_past:], seq.n_past)
            self.stats.prompt_tokens += len(tokens) - seq.n_past
            self.stats.prompt_seconds += time.perf_counter() - started
            seq.n_past = len(tokens)
            self._advance(seq, self._logits(-1))
            if seq.finish is None:
                active.append(seq)
            else:
                free.insert(0, seq.seq_id)

    def _advance(self, seq: _Sequence, logits: np.ndarray) -> None:
        """Sample the next token of ``seq`` and decide whether it is done."""
        import llama_cpp

        if seq.item.max_tokens <= 0:
            seq.finish = "length"
            return
        token = seq.sampler.pick(logits)
        if llama_cpp.llama_vocab_is_eog(self.vocab, token):
            seq.finish = "stop"
            return
        seq.sampler.accept(token)
        seq.generated.append(token)
        seq.data += self.llm.detokenize([token])
        seq.next_token = token
        seq.finish = self._finish(seq)

    @staticmethod
    def _finish(seq: _Sequence) -> str | None:
        """Stop string, then length, then the end of the first paragraph (the order in
        which the solo path checks them)."""
        s = seq.item.sampling
        text = seq.text() if (s.stop or s.first_paragraph_only) else ""
        if s.stop:
            seq.cut = earliest_stop(text, s.stop)
            if seq.cut >= 0:
                return "stop"
        if len(seq.generated) >= seq.item.max_tokens:
            return "length"
        if s.first_paragraph_only and "\n\n" in text.lstrip():
            return "stop"
        return None

    def _completion(self, seq: _Sequence, seconds: float) -> Completion:
        """The completion of a finished sequence. Its text is decoded from the byte string
        of all its tokens (a character split across tokens stays whole); ``seconds`` is
        its share of the group's wall time, so the shares add up to the real time."""
        text = self.llm.detokenize(seq.generated).decode("utf-8", errors="ignore")
        if seq.cut >= 0:
            text = text[:earliest_stop(text, seq.item.sampling.stop)]
        return Completion(text=text, finish_reason=seq.finish or "stop",
                          prompt_tokens=len(seq.item.tokens),
                          completion_tokens=len(seq.generated), seconds=seconds)
