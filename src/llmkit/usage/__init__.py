"""Usage and cost: pricing a call (:mod:`llmkit.usage.cost`) and totalling many (:mod:`llmkit.usage.tracker`).

Example:
    >>> from llmkit.usage import CostTracker, price, set_price
"""

from __future__ import annotations

from llmkit.usage.cost import (
    Cost,
    clear_prices,
    cost_of,
    load_prices,
    price,
    price_overrides,
    server_provider,
    set_price,
    set_prices,
)
from llmkit.usage.tracker import CostTracker, Totals, attribution

__all__ = [
    "Cost",
    "CostTracker",
    "Totals",
    "attribution",
    "clear_prices",
    "cost_of",
    "load_prices",
    "price",
    "price_overrides",
    "server_provider",
    "set_price",
    "set_prices",
]
