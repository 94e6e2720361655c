"""Token and cost budgets: stop a run cleanly when it has spent what it was allowed.

What a run has spent is derived, not stored: every fresh completion is in the response
cache with its token counts, so the cache's totals are the run's spending across all its
sessions. The budget is checked before each request is sent; requests already in flight
finish and are recorded, then the run stops with :class:`BudgetExhausted`. Re-running with
a higher budget resumes it.

Cost is ``prompt_tokens * input_price + completion_tokens * output_price``, with prices
in USD per million tokens given as options (no price list is built in).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from selfinstruct.errors import BudgetExhausted

__all__ = ["Budget", "BudgetExhausted"]


@dataclass
class Budget:
    max_tokens_total: int = 0  # 0: no limit
    max_cost: float = 0.0  # USD; 0: no limit
    input_price: float = 0.0  # USD per million prompt tokens
    output_price: float = 0.0  # USD per million completion tokens
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * self.input_price
                + self.completion_tokens * self.output_price) / 1e6

    @property
    def priced(self) -> bool:
        return bool(self.input_price or self.output_price)

    def spend(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def exhausted(self) -> str | None:
        """Why no further request may be sent, or None."""
        if self.max_tokens_total and self.tokens >= self.max_tokens_total:
            return f"--max-tokens-total {self.max_tokens_total} reached ({self.tokens} tokens)"
        if self.max_cost and self.cost >= self.max_cost:
            return f"--max-cost {self.max_cost} USD reached ({self.cost:.4f} USD)"
        return None

    def describe(self) -> str:
        text = f"{self.tokens:,} tokens"
        return f"{text}, ${self.cost:.4f}" if self.priced else text
