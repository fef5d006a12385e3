"""A deployment: one LLM a router may send a call to, with its weight and limits, and what the router has learned
of it (latency, failures)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from llmkit.llm import LLM


@dataclass(eq=False)
class Deployment:
    """One LLM in a router group.

    Args:
        llm: any llmkit LLM (any provider, the embedded model included).
        name: unique within the router (default: the group, the provider and the model, numbered if repeated).
        weight: share of traffic under the weighted strategy.
        rpm / tpm: requests and tokens per minute this deployment may take (global when the router has Redis).
        max_parallel: calls in flight at once.
    """

    llm: LLM
    name: str = ""
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    stats: LatencyStats = field(default_factory=lambda: LatencyStats())
    #: whether the LLM retries by itself (it has ``max_retries``): routed calls then pass ``max_retries=0``
    has_retries: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.has_retries = "max_retries" in type(self.llm).model_fields
        if self.weight <= 0:
            raise ValueError(f"deployment {self.name or self.llm.metadata.model_name!r}: weight must be > 0")
        for limit in ("rpm", "tpm", "max_parallel"):
            value = getattr(self, limit)
            if value is not None and value < 1:
                raise ValueError(f"deployment {self.name!r}: {limit} must be >= 1 (or None for no limit)")


class LatencyStats:
    """Exponentially weighted moving averages of time to first token and of total time, in seconds."""

    ALPHA = 0.3

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.first_token: float | None = None
        self.total: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def observe(self, total: float, first_token: float | None = None) -> None:
        with self._lock:
            self.total = total if self.total is None else self.ALPHA * total + (1 - self.ALPHA) * self.total
            if first_token is not None:
                previous = self.first_token
                self.first_token = first_token if previous is None else (
                    self.ALPHA * first_token + (1 - self.ALPHA) * previous
                )
