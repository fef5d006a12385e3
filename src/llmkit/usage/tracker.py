"""CostTracker: a callback handler that totals what calls used and cost, overall and by model, key and tag.

Example:
    >>> from llmkit import CallbackManager, ChatMessage, ScriptedLLM
    >>> from llmkit.usage import CostTracker
    >>> tracker = CostTracker()
    >>> llm = ScriptedLLM(callback_manager=CallbackManager([tracker]))
    >>> with attribution(key="team-a", tags=["nightly"]):
    ...     _ = llm.chat([ChatMessage(role="user", content="Hello there")])
    >>> tracker.calls, tracker.total_cost, tracker.by_tag["nightly"].calls
    (1, Decimal('0'), 1)
"""

from __future__ import annotations

import contextvars
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from llmkit.callbacks import CallbackHandler, LLMEvent
from llmkit.types import Usage
from llmkit.usage.cost import Cost, cost_of, genai_prices_available

_attribution: contextvars.ContextVar[tuple[str | None, tuple[str, ...]]] = contextvars.ContextVar(
    "llmkit_attribution", default=(None, ())
)


class attribution:
    """Charge the calls made in the block to ``key`` (a team, a gateway's virtual key) and ``tags``.

    Nested blocks keep the outer key unless they name one, and add their tags."""

    __slots__ = ("key", "tags", "token")

    def __init__(self, key: str | None = None, tags: Iterable[str] = ()) -> None:
        self.key, self.tags = key, tuple(tags)
        self.token: contextvars.Token[tuple[str | None, tuple[str, ...]]] | None = None

    def __enter__(self) -> None:
        outer_key, outer_tags = _attribution.get()
        self.token = _attribution.set((self.key or outer_key, (*outer_tags, *self.tags)))

    def __exit__(self, *exc_info: object) -> None:
        if self.token is not None:
            _attribution.reset(self.token)


@dataclass
class Totals:
    """Calls, their summed token counts, the known USD cost and aiXplain credits, and how many calls had no known
    cost. Counts a service did not report add nothing."""

    calls: int = 0
    cost: Decimal = Decimal(0)
    credits: Decimal = Decimal(0)
    unknown_cost_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def usage(self) -> Usage:
        """The summed counts as a :class:`~llmkit.types.Usage`."""
        return Usage(
            prompt_tokens=self.input_tokens,
            completion_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )

    def add(self, usage: Usage | None, cost: Cost) -> None:
        self.calls += 1
        if usage is not None:  # plain ints: summing Usage models would cost more than the rest of the call
            self.input_tokens += usage.prompt_tokens or 0
            self.output_tokens += usage.completion_tokens or 0
            self.cache_read_tokens += usage.cache_read_tokens or 0
            self.cache_write_tokens += usage.cache_write_tokens or 0
            self.reasoning_tokens += usage.reasoning_tokens or 0
        if cost.amount is None:
            self.unknown_cost_calls += 1
        elif cost.currency == "USD":
            self.cost += cost.amount
        else:
            self.credits += cost.amount


class CostTracker(CallbackHandler):
    """Totals usage and cost of every call that ends (thread-safe): ``total_cost`` (USD, the calls whose price is
    known; ``unknown_cost_calls`` counts the others), ``total_credits`` (aiXplain), and ``by_model``, ``by_key``,
    ``by_tag`` (see :class:`attribution`). Failed calls cost nothing here: a failed request reports no usage.

    Without the ``cost`` extra (``genai-prices``) only overrides and local models are priced: creating a tracker
    then warns, naming the extra.
    """

    def __init__(self) -> None:
        if not genai_prices_available():
            warnings.warn(
                "CostTracker: the price table is not installed, so hosted models' costs are unknown. "
                "Install it with: pip install 'llmkit[cost]'",
                stacklevel=2,
            )
        self._lock = threading.Lock()
        self.totals = Totals()
        self.by_model: dict[str, Totals] = {}
        self.by_key: dict[str, Totals] = {}
        self.by_tag: dict[str, Totals] = {}

    @property
    def total_cost(self) -> Decimal:
        """USD spent by the calls whose price is known."""
        return self.totals.cost

    @property
    def total_credits(self) -> Decimal:
        """Credits spent on credit-billed services (aiXplain)."""
        return self.totals.credits

    @property
    def calls(self) -> int:
        """Calls that ended."""
        return self.totals.calls

    @property
    def unknown_cost_calls(self) -> int:
        """Calls whose cost is unknown (no usage reported, or no price for the model)."""
        return self.totals.unknown_cost_calls

    @property
    def usage(self) -> Usage:
        """The summed usage of every call."""
        return self.totals.usage

    def on_llm_start(self, event: LLMEvent) -> None:
        event.scratch[self] = _attribution.get()  # who pays is decided where the call starts

    def on_llm_end(self, event: LLMEvent) -> None:
        usage = event.usage
        cost = cost_of(usage)
        key, tags = event.scratch.get(self, (None, ()))
        model = (usage.model if usage is not None else None) or event.model or "unknown"
        with self._lock:
            self.totals.add(usage, cost)
            _bucket(self.by_model, model).add(usage, cost)
            if key is not None:
                _bucket(self.by_key, key).add(usage, cost)
            for tag in tags:
                _bucket(self.by_tag, tag).add(usage, cost)

    def reset(self) -> None:
        """Zero every total."""
        with self._lock:
            self.totals = Totals()
            self.by_model, self.by_key, self.by_tag = {}, {}, {}

    def summary(self) -> dict[str, Any]:
        """The totals as plain data (USD as strings, exact)."""
        with self._lock:
            return {
                "calls": self.totals.calls,
                "total_cost": str(self.totals.cost),
                "total_credits": str(self.totals.credits),
                "unknown_cost_calls": self.totals.unknown_cost_calls,
                "by_model": {name: str(t.cost) for name, t in self.by_model.items()},
                "by_key": {name: str(t.cost) for name, t in self.by_key.items()},
                "by_tag": {name: str(t.cost) for name, t in self.by_tag.items()},
            }


def _bucket(buckets: dict[str, Totals], name: str) -> Totals:
    totals = buckets.get(name)
    if totals is None:
        totals = buckets[name] = Totals()
    return totals


__all__ = ["CostTracker", "Totals", "attribution"]
