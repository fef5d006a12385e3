"""The gateway's Prometheus metrics (``GET /metrics``), in a registry of its own.

Each worker process serves its own counts; run one scrape target per worker. The counts are plain numbers kept by
the event loop's thread and turned into metric families when scraped (a prometheus_client custom collector): a
request costs a few dictionary updates, not a lock per series as ``Counter``/``Histogram`` take.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from llmkit.errors import missing_extra

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Requests by model and status, tokens by model and direction, cost, latency.

    Example:
        >>> metrics = Metrics()
        >>> metrics.observe("gpt", 200, 0.02, None, None)
        >>> 'llmkit_gateway_requests_total{model="gpt",status="200"} 1.0' in metrics.render()[0].decode()
        True
    """

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
            from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
            from prometheus_client.utils import floatToGoString
        except ImportError as exc:
            raise missing_extra("prometheus-client", "server") from exc
        self._prom = prom
        self._families = (CounterMetricFamily, HistogramMetricFamily)
        self._bounds = [*map(floatToGoString, BUCKETS), "+Inf"]  # "le" labels as prometheus_client's Histogram
        self._requests: dict[tuple[str, int], int] = {}
        self._tokens: dict[tuple[str, str], int] = {}
        self._cost: dict[str, float] = {}
        self._latency: dict[str, list[float]] = {}  # per model: a count per bucket (and +Inf), then the sum
        self.registry = prom.CollectorRegistry()
        self.registry.register(self)

    def observe(self, model: str, status: int, seconds: float, usage: Any, cost: float | None) -> None:
        """Count one finished request."""
        key = (model, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(model)
        if latency is None:
            latency = self._latency[model] = [0.0] * (len(BUCKETS) + 2)
        latency[bisect_left(BUCKETS, seconds)] += 1  # the first bucket whose bound is >= seconds ("le")
        latency[-1] += seconds
        if usage is not None:
            if usage.prompt_tokens:
                self._add_tokens(model, "input", usage.prompt_tokens)
            if usage.completion_tokens:
                self._add_tokens(model, "output", usage.completion_tokens)
        if cost:
            self._cost[model] = self._cost.get(model, 0.0) + cost

    def _add_tokens(self, model: str, direction: str, count: int) -> None:
        key = (model, direction)
        self._tokens[key] = self._tokens.get(key, 0) + count

    def collect(self) -> Iterator[Any]:
        """The metric families (prometheus_client's collector interface, called when scraped)."""
        counter, histogram = self._families
        requests = counter("llmkit_gateway_requests", "Requests answered", labels=["model", "status"])
        for (model, status), count in list(self._requests.items()):
            requests.add_metric([model, str(status)], count)
        tokens = counter("llmkit_gateway_tokens", "Tokens used", labels=["model", "direction"])
        for (model, direction), count in list(self._tokens.items()):
            tokens.add_metric([model, direction], count)
        cost = counter("llmkit_gateway_cost_usd", "Cost in USD", labels=["model"])
        for model, amount in list(self._cost.items()):
            cost.add_metric([model], amount)
        latency = histogram("llmkit_gateway_request_seconds", "Time to the last byte", labels=["model"])
        for model, counts in list(self._latency.items()):
            cumulative, buckets = 0.0, []
            for bound, hits in zip(self._bounds, counts[:-1], strict=True):
                cumulative += hits
                buckets.append((bound, cumulative))
            latency.add_metric([model], buckets, counts[-1])
        yield from (requests, tokens, cost, latency)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
