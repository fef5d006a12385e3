"""The gateway's Prometheus metrics (``GET /metrics``), in a registry of its own.

Each worker process serves its own counts; run one scrape target per worker, or set ``PROMETHEUS_MULTIPROC_DIR``
for prometheus_client's multiprocess mode.
"""

from __future__ import annotations

from typing import Any

from llmkit.errors import missing_extra


class Metrics:
    """Requests by model and status, tokens by model and direction, cost, latency."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError as exc:
            raise missing_extra("prometheus-client", "server") from exc
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "llmkit_gateway_requests", "Requests answered", ["model", "status"], registry=self.registry
        )
        self.tokens = prom.Counter(
            "llmkit_gateway_tokens", "Tokens used", ["model", "direction"], registry=self.registry
        )
        self.cost = prom.Counter("llmkit_gateway_cost_usd", "Cost in USD", ["model"], registry=self.registry)
        self.latency = prom.Histogram(
            "llmkit_gateway_request_seconds",
            "Time to the last byte",
            ["model"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self._children: dict[tuple[str, ...], Any] = {}  # labelled series, looked up once (labels() is not free)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (str(id(metric)), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, model: str, status: int, seconds: float, usage: Any, cost: float | None) -> None:
        """Count one finished request."""
        self._child(self.requests, model, str(status)).inc()
        self._child(self.latency, model).observe(seconds)
        if usage is not None:
            if usage.prompt_tokens:
                self._child(self.tokens, model, "input").inc(usage.prompt_tokens)
            if usage.completion_tokens:
                self._child(self.tokens, model, "output").inc(usage.completion_tokens)
        if cost:
            self._child(self.cost, model).inc(cost)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
