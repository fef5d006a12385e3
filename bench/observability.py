"""Overhead per call of the OpenTelemetry handler (``llmkit.instrument()``, SDK tracer and meter providers) and of
the ``CostTracker``, as a share of the floor's per-call time: the fastest raw client (raw urllib3, as in
``bench.http``) against the canned loopback server, with raw httpx as a peer; all in one interleaved run.

The overhead itself is measured in process (an LLM whose answer is prebuilt, reporting gpt-4o usage, so the cost
tracker prices from the genai-prices table), where it is not drowned by the loopback server's noise; the HTTP rows
show the same cases end to end. The "SDK alone" rows are what the OpenTelemetry SDK itself costs for the very span
and metric points the handler records for that call, without llmkit: the part of the overhead no handler can remove.
The verdicts split each OpenTelemetry overhead into the SDK's part and llmkit's part; the "SDK taken out" row measures
llmkit's part directly (the handler's tracer and histograms replaced by ones that do nothing), without the noise of
subtracting two large numbers.

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
from bench.http import raw_case, raw_urllib3_case


class _NoSpan:
    """A recording span that records nothing: with :class:`_NoTracer` and :class:`_NoHistogram` it takes the SDK
    out of an instrumented call, leaving llmkit's own work (events, attributes, pricing, propagation)."""

    def __init__(self) -> None:
        from opentelemetry.trace import SpanContext, TraceFlags

        self._context = SpanContext(1, 2, False, TraceFlags(1))

    def is_recording(self) -> bool:
        return True

    def get_span_context(self) -> Any:
        return self._context

    def set_attributes(self, attributes: Any) -> None:
        pass

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_status(self, status: Any, description: str | None = None) -> None:
        pass

    def end(self, end_time: int | None = None) -> None:
        pass


class _NoTracer:
    def __init__(self) -> None:
        self.span = _NoSpan()

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> _NoSpan:
        return self.span


class _NoHistogram:
    def record(self, amount: float, attributes: Any = None) -> None:
        pass


@contextmanager
def _instrumented(metrics: bool = True, sdk: bool = True) -> Iterator[None]:
    """``llmkit.instrument()`` with real SDK providers: spans batched to an exporter that drops them, metrics
    aggregated in memory (what a production setup pays per call, less the export thread's work). ``sdk=False``
    replaces the handler's tracer and histograms with ones that do nothing: llmkit's own part alone."""
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
    handler = llmkit.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, metrics=metrics)
    if not sdk:
        handler.tracer = _NoTracer()  # type: ignore[assignment]
        handler.token_usage = handler.duration = _NoHistogram()  # type: ignore[assignment]
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
    chunk: int | None = None,
) -> dict[str, float]:
    """µs per call of each case, rounds interleaved; ``instrumented`` cases run under :func:`_instrumented`. Each
    round times its ``calls`` in chunks of ``chunk`` calls (default: one chunk), each chunk one sample: short chunks
    let ``min`` find the cost of a call the machine's other work did not disturb (a few ms fits in a time slice)."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    size = min(chunk or calls, calls)
    for call in cases.values():
        for _ in range(50):
            call()

    def timed(call: Callable[[], object]) -> None:
        for _ in range(max(calls // size, 1)):
            start = time.perf_counter()
            for _ in range(size):
                call()
            samples[name].append((time.perf_counter() - start) / size * 1e6)

    for _ in range(rounds):
        for name, call in cases.items():
            if name in instrumented:
                with _instrumented(metrics="spans only" not in name, sdk=name != OWN):
                    timed(call)
            else:
                timed(call)
    return {name: pick(values) for name, values in samples.items()}


FLOOR = "raw urllib3"
PEER = "raw httpx"
BARE = "in process (no I/O)"
TRACKED = "in process + CostTracker"
TRACED = "in process + OTel"
SPANS_ONLY = "in process + OTel, spans only"
OWN = "in process + OTel, the SDK taken out (llmkit's own part)"
SDK_SPAN = "OTel SDK alone: the call's span (3 attributes at start, 8 at end)"
SDK_METRICS = "OTel SDK alone: the call's 3 histogram points (4-5 attributes each)"


def measure(calls: int = 2000, rounds: int = 5) -> dict[str, float]:
    """Median µs per chat call over HTTP (floor, peer, llmkit, + CostTracker, + OTel), then the in-process cases and
    the SDK alone (the fastest chunk of 200 calls)."""
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
            FLOOR: raw_urllib3_case(base).chat,
            PEER: raw_case(base).chat,
            "llmkit": lambda: bare.chat(messages),
            "llmkit + CostTracker": lambda: tracked.chat(messages),
            "llmkit + OTel": lambda: traced.chat(messages),
            "llmkit + OTel, spans only": lambda: traced.chat(messages),
        }
        instrumented = {"llmkit + OTel", "llmkit + OTel, spans only"}
        result = _interleave(cases, max(calls // rounds, 1), rounds, instrumented, statistics.median)
    return {**result, **_in_process(calls, rounds)}


def _in_process(calls: int, rounds: int) -> dict[str, float]:
    from llmkit import CallbackManager, ChatMessage
    from llmkit.llm import LLM
    from llmkit.types import ChatResponse, LLMMetadata, Usage, text_message
    from llmkit.usage import CostTracker

    metadata = LLMMetadata(model_name="gpt-4o", is_chat_model=True)

    class Priced(LLM):
        """Answers at once, reporting gpt-4o usage as OpenAI's wire parser would (a fresh Usage per call)."""

        @property
        def metadata(self) -> LLMMetadata:
            return metadata

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
    span, points, close = _sdk_alone()
    cases: dict[str, Callable[[], object]] = {
        BARE: lambda: bare.chat(messages),
        TRACKED: lambda: tracked.chat(messages),
        TRACED: lambda: traced.chat(messages),
        SPANS_ONLY: lambda: traced.chat(messages),
        OWN: lambda: traced.chat(messages),
        SDK_SPAN: span,
        SDK_METRICS: points,
    }
    try:
        result = _interleave(cases, calls, rounds, {TRACED, SPANS_ONLY, OWN}, chunk=200)
    finally:
        close()
    assert tracker.unknown_cost_calls == 0  # the table priced every call
    return result


def _sdk_alone() -> tuple[Callable[[], None], Callable[[], None], Callable[[], None]]:
    """The OpenTelemetry SDK recording, without llmkit, exactly what the handler records for the in-process call
    (same providers and processors as :func:`_instrumented`): its span, and its three histogram points. Returns
    the two cases and a function that shuts the providers down."""
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
    start_attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
    }
    end_attributes = {
        "gen_ai.response.model": "gpt-4o",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 200,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "llmkit.cost": 0.00575,
    }
    metric = {**start_attributes, "gen_ai.response.model": "gpt-4o"}
    metric_input = {**metric, "gen_ai.token.type": "input"}
    metric_output = {**metric, "gen_ai.token.type": "output"}

    def span() -> None:
        one = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=start_attributes)
        one.set_attributes(end_attributes)
        one.end()

    def points() -> None:
        duration.record(0.001, metric)
        tokens.record(1200, metric_input)
        tokens.record(300, metric_output)

    def close() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return span, points, close


def _share(us: float, floor: float) -> str:
    return f"{us / floor * 100:+.1f}%"


def table(result: dict[str, float]) -> str:
    floor, peer, bare = result[FLOOR], result[PEER], result[BARE]
    sdk_span, sdk_metrics = result[SDK_SPAN], result[SDK_METRICS]
    lines = [f"| case | chat (µs/call) | ratio to {FLOOR} |", "|---|---|---|"]
    lines += [f"| {name} | {us:.0f} | {us / floor:.2f}x |" for name, us in result.items()]
    lines.append("")
    lines.append(
        f"Overheads, in process, as a share of the floor's per-call time ({FLOOR}, {floor:.0f} µs; {PEER} "
        f"{peer:.0f} µs):"
    )
    lines.append("")
    lines.append(f"| overhead | µs/call | of the floor | of {PEER} | SDK's part | llmkit's part | target <= 5% |")
    lines.append("|---|---|---|---|---|---|---|")
    rows = [
        ("CostTracker", result[TRACKED] - bare, 0.0),
        ("OpenTelemetry handler (llmkit.instrument())", result[TRACED] - bare, sdk_span + sdk_metrics),
        ("OpenTelemetry handler, spans only (instrument(metrics=False))", result[SPANS_ONLY] - bare, sdk_span),
    ]
    for name, overhead, sdk in rows:
        ours = overhead - sdk
        verdict = "pass" if overhead <= 0.05 * floor else "FAIL"
        if overhead > 0.05 * floor and sdk > 0.05 * floor:
            verdict += f" (the SDK alone is {sdk / floor * 100:.0f}%)"
        elif sdk and ours <= 0.05 * floor:
            verdict += " (llmkit's part passes)"
        lines.append(
            f"| {name} | {overhead:.1f} | {_share(overhead, floor)} | {_share(overhead, peer)} | "
            f"{_share(sdk, floor) if sdk else '-'} | {_share(ours, floor)} | {verdict} |"
        )
    own = result[OWN] - bare
    lines.append("")
    lines.append(
        f"llmkit's own part measured directly (the handler's tracer and histograms replaced by ones that do nothing): "
        f"{own:.1f} µs, {_share(own, floor)} of the floor ({'pass' if own <= 0.05 * floor else 'FAIL'} on its own)."
    )
    lines.append("")
    lines.append(
        f"The OpenTelemetry SDK alone, recording the same span and points without llmkit, costs "
        f"{sdk_span:.1f} µs for the span and {sdk_metrics:.1f} µs for the three histogram points: "
        f"{(sdk_span + sdk_metrics) / floor * 100:.1f}% of the floor"
        + (", above the 5% target before llmkit does anything." if sdk_span + sdk_metrics > 0.05 * floor else ".")
    )
    return "\n".join(lines)


def main() -> int:
    return run(__doc__, measure, table)


if __name__ == "__main__":
    raise SystemExit(main())
