"""Overhead per call of the OpenTelemetry handler (``llmkit.instrument()``, SDK tracer and meter providers) and of
the ``CostTracker``, as a share of the raw-client floor's per-call time (raw httpx against the canned loopback
server), all in one interleaved run.

The overhead itself is measured in process (an LLM whose answer is prebuilt, reporting gpt-4o usage, so the cost
tracker prices from the genai-prices table), where it is not drowned by the loopback server's noise; the HTTP rows
show the same cases end to end.

Run: .venv/bin/python -m bench.observability [--calls 2000] [--rounds 5]
Target: each overhead <= 5% of the floor's per-call time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bench._main import run
from bench.canned_server import running
from bench.http import raw_case


@contextmanager
def _instrumented(metrics: bool = True) -> Iterator[None]:
    """``llmkit.instrument()`` with real SDK providers: spans batched to an exporter that drops them, metrics
    aggregated in memory (what a production setup pays per call, less the export thread's work)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import llmkit

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    llmkit.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, metrics=metrics)
    try:
        yield
    finally:
        llmkit.uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def _interleave(
    cases: dict[str, Callable[[], object]],
    calls: int,
    rounds: int,
    instrumented: set[str],
    pick: Callable[[list[float]], float] = min,
) -> dict[str, float]:
    """µs per call of each case, rounds interleaved; ``instrumented`` cases run under :func:`_instrumented`."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for call in cases.values():
        for _ in range(50):
            call()
    for _ in range(rounds):
        for name, call in cases.items():
            if name in instrumented:
                with _instrumented(metrics="spans only" not in name):
                    start = time.perf_counter()
                    for _ in range(calls):
                        call()
                    elapsed = time.perf_counter() - start
            else:
                start = time.perf_counter()
                for _ in range(calls):
                    call()
                elapsed = time.perf_counter() - start
            samples[name].append(elapsed / calls * 1e6)
    return {name: pick(values) for name, values in samples.items()}


def measure(calls: int = 2000, rounds: int = 5) -> dict[str, float]:
    """Median µs per chat call over HTTP (floor, llmkit, + CostTracker, + OTel), then the in-process cases (min)."""
    from llmkit import CallbackManager, ChatMessage, OpenAI
    from llmkit.usage import CostTracker, set_price

    set_price("bench", provider="openai", input=2.5, output=10)  # the canned server's model, priced
    messages = [ChatMessage(role="user", content="What is the capital of France?")]
    with running() as base:
        bare = OpenAI(model="bench", api_base=base, api_key="sk-bench")
        tracked = OpenAI(
            model="bench", api_base=base, api_key="sk-bench", callback_manager=CallbackManager([CostTracker()])
        )
        traced = OpenAI(model="bench", api_base=base, api_key="sk-bench")
        cases: dict[str, Callable[[], object]] = {
            "raw httpx": raw_case(base).chat,
            "llmkit": lambda: bare.chat(messages),
            "llmkit + CostTracker": lambda: tracked.chat(messages),
            "llmkit + OTel": lambda: traced.chat(messages),
        }
        result = _interleave(cases, max(calls // rounds, 1), rounds, {"llmkit + OTel"}, statistics.median)
    return {**result, **_in_process(calls, rounds)}


def _in_process(calls: int, rounds: int) -> dict[str, float]:
    from llmkit import CallbackManager, ChatMessage
    from llmkit.llm import LLM
    from llmkit.types import ChatResponse, LLMMetadata, Usage, text_message
    from llmkit.usage import CostTracker

    class Priced(LLM):
        """Answers at once, reporting gpt-4o usage as OpenAI's wire parser would (a fresh Usage per call)."""

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="gpt-4o", is_chat_model=True)

        def _provider_name(self) -> str:
            return "openai"

        def _chat(self, messages: Any, **kwargs: Any) -> ChatResponse:
            usage = Usage(prompt_tokens=1200, completion_tokens=300, cache_read_tokens=200, model="gpt-4o")
            return ChatResponse(
                message=text_message("Paris."), usage=usage, additional_kwargs={"finish_reason": "stop"}
            )

    messages = [ChatMessage(role="user", content="x")]
    bare = Priced()
    tracker = CostTracker()
    tracked = Priced(callback_manager=CallbackManager([tracker]))
    traced = Priced()
    cases: dict[str, Callable[[], object]] = {
        "in process (no I/O)": lambda: bare.chat(messages),
        "in process + CostTracker": lambda: tracked.chat(messages),
        "in process + OTel": lambda: traced.chat(messages),
        "in process + OTel, spans only": lambda: traced.chat(messages),
    }
    result = _interleave(cases, calls, rounds, {"in process + OTel", "in process + OTel, spans only"})
    assert tracker.unknown_cost_calls == 0  # the table priced every call
    return {**result, SDK_ALONE: _sdk_alone(calls, rounds)}


SDK_ALONE = "OTel SDK alone (a span, 12 attributes, 3 histogram records)"


def _sdk_alone(calls: int, rounds: int) -> float:
    """What the OpenTelemetry SDK itself costs for the span and metrics of one call, without llmkit: the part of the
    handler's overhead that no handler can remove."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer = tracer_provider.get_tracer("bench")
    meter = meter_provider.get_meter("bench")
    tokens, duration = meter.create_histogram("tokens"), meter.create_histogram("duration")
    start_attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "m"}
    end_attributes = {
        "gen_ai.response.model": "m",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 200,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "llmkit.cost": 0.00575,
        "gen_ai.response.id": "x",
        "gen_ai.request.temperature": 0.1,
    }
    metric = {**start_attributes, "gen_ai.response.model": "m"}

    def one() -> None:
        span = tracer.start_span("chat m", kind=SpanKind.CLIENT, attributes=start_attributes)
        span.set_attributes(end_attributes)
        span.end()
        duration.record(0.001, metric)
        tokens.record(1200, {**metric, "gen_ai.token.type": "input"})
        tokens.record(300, {**metric, "gen_ai.token.type": "output"})

    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            one()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return best


def table(result: dict[str, float]) -> str:
    floor = result["raw httpx"]
    bare = result["in process (no I/O)"]
    overheads = {
        "CostTracker": (result["in process + CostTracker"] - bare) / floor,
        "OpenTelemetry handler": (result["in process + OTel"] - bare) / floor,
        "OpenTelemetry handler, spans only (instrument(metrics=False))": (
            result["in process + OTel, spans only"] - bare
        ) / floor,
    }
    lines = ["| case | chat (µs/call) | ratio to the floor |", "|---|---|---|"]
    lines += [f"| {name} | {us:.0f} | {us / floor:.2f}x |" for name, us in result.items()]
    lines.append("")
    for name, overhead in overheads.items():
        verdict = "pass" if overhead <= 0.05 else "FAIL"
        lines.append(f"{name} overhead: {overhead * 100:+.1f}% of the floor's per-call time (target <= 5%: {verdict}).")
    if SDK_ALONE in result:
        sdk = result[SDK_ALONE] / floor
        llmkit_part = overheads["OpenTelemetry handler"] - sdk
        lines.append(
            f"Of the OpenTelemetry overhead, the SDK's own recording is {sdk * 100:.1f}% of the floor and llmkit's "
            f"part {llmkit_part * 100:+.1f}%."
        )
    return "\n".join(lines)


def main() -> int:
    return run(__doc__, measure, table)


if __name__ == "__main__":
    raise SystemExit(main())
