"""What a gateway request costs: the estimate reserved against a key's budget before the call, and the real cost
settled after it, both from :mod:`llmkit.usage.cost` (the same prices ``response.cost`` and ``CostTracker`` use).

The estimate is an upper bound, so that concurrent requests cannot overspend: every byte of the request counted as
an input token (a token is never shorter than a byte), plus a few tokens per message, plus the request's
``max_tokens`` as output (the gateway sets ``max_tokens`` for a key with a budget when the request has none), priced
as uncached on the provider and model the public name was last served by (learned from each answer's usage), or else
on what the LLM says it is. A model nothing prices gives no estimate: a key with a budget cannot use it.
"""

from __future__ import annotations

from typing import Any

from llmkit.types import Usage

_TOKENS_PER_MESSAGE = 8  # role and separators a chat template adds around each message


def _identity(llm: Any) -> tuple[str | None, str | None]:
    inner = llm.__dict__.get("llm")
    if inner is not None:  # a wrapper (cache, structured): what it wraps answers
        return _identity(inner)
    groups = llm.__dict__.get("groups")
    if isinstance(groups, dict) and groups:  # a router: its default group's first deployment
        group = groups.get(llm.__dict__.get("default_group")) or next(iter(groups.values()))
        if group:
            return _identity(group[0].llm)
    return llm._provider_name(), llm.metadata.model_name


class Pricing:
    """Estimates and actual costs in USD (None: unknown)."""

    def __init__(self, default_output_tokens: int = 1024) -> None:
        self.default_output_tokens = default_output_tokens
        self._served_by: dict[int, tuple[str | None, str | None]] = {}

    def estimate(self, llm: Any, request_bytes: int, messages: int, max_tokens: int | None) -> float | None:
        """The most calling ``llm`` with a request of ``request_bytes`` can cost (the amount to reserve)."""
        from llmkit.usage.cost import price

        provider, model = self._served_by.get(id(llm)) or _identity(llm)
        usage = Usage(
            prompt_tokens=request_bytes + _TOKENS_PER_MESSAGE * (messages + 1),
            completion_tokens=max_tokens or self.default_output_tokens,
            provider=provider,
            model=model,
        )
        cost = price(usage, provider, model)
        return float(cost.amount) if cost is not None and cost.amount is not None and cost.currency == "USD" else None

    def actual(self, usage: Usage | None, llm: Any = None) -> float | None:
        """What the answer with ``usage`` cost (and, given ``llm``, remember who served it for later estimates)."""
        if usage is None:
            return None
        from llmkit.usage.cost import cost_of

        if llm is not None and usage.provider is not None:
            self._served_by[id(llm)] = (usage.provider, usage.model)
        cost = cost_of(usage)
        return float(cost.amount) if cost.known and cost.amount is not None and cost.currency == "USD" else None
