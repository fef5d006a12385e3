"""OpenTelemetry: spans and metrics read back from the SDK's in-memory exporter and reader, for real calls on
loopback servers (a chat, a stream, structured prediction, tool calling, a retried call, a routed call)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="tracing needs the 'otel' extra: pip install 'llmkit[otel]'")

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator, default_setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel

import llmkit
from llmkit import ChatMessage, FunctionTool, OpenAI, OpenAILike, PromptTemplate, ScriptedLLM
from llmkit.errors import NoDeploymentAvailableError, ServerError
from llmkit.router import Deployment, Router
from tests.conftest import FAST_RETRIES
from tests.servers.fault import FaultServer
from tests.servers.usage import UsageServer

MESSAGES = [ChatMessage(role="user", content="Capital of France?")]


class Telemetry:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        matches = [span for span in self.spans() if span.name == name]
        assert len(matches) == 1, [span.name for span in self.spans()]
        return matches[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        found = [s for s in self.spans() if s.parent is not None and s.parent.span_id == parent.context.span_id]
        return sorted(found, key=lambda span: span.start_time or 0)

    def tree(self) -> list[Any]:
        """Each root span's name with its children's trees."""

        def build(span: ReadableSpan) -> Any:
            kids = self.children(span)
            return [span.name, [build(kid) for kid in kids]] if kids else span.name

        return [build(span) for span in self.spans() if span.parent is None]

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    llmkit.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    yield telemetry
    llmkit.uninstrument()


def test_a_chat_span_follows_the_genai_conventions(otel: Telemetry, usage_server: UsageServer) -> None:
    llm = OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test", temperature=0.2, max_tokens=50)
    llm.chat(MESSAGES)
    span = otel.named("chat gpt-4o")
    assert span.kind is SpanKind.CLIENT
    assert span.parent is None
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.response.model"] == "gpt-4o"
    assert attributes["gen_ai.response.id"] == "chatcmpl-usage"
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.usage.output_tokens"] == 300
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 200
    assert attributes["llmkit.cost"] > 0
    assert "gen_ai.input.messages" not in attributes  # content only when enabled
    # The request carried the span's W3C traceparent.
    assert span.context is not None
    _version, trace_id, span_id, _ = usage_server.requests[-1].headers["traceparent"].split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == (span.context.trace_id, span.context.span_id)
    metrics = otel.metrics()
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"]}
    assert tokens == {"input": 1200, "output": 300}
    (duration,) = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1
    assert duration.attributes["gen_ai.response.model"] == "gpt-4o"


def test_a_stream_span_has_the_usage_of_the_last_chunk(otel: Telemetry, usage_server: UsageServer) -> None:
    llm = OpenAI(model="gpt-4o-mini", api_base=usage_server.url, api_key="sk-test")
    text = "".join(chunk.delta or "" for chunk in llm.stream_chat(MESSAGES))
    assert text.strip() == "Paris is the capital."
    attributes = dict(otel.named("chat gpt-4o-mini").attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_content_is_captured_only_when_enabled(usage_server: UsageServer) -> None:
    telemetry = Telemetry()
    llmkit.instrument(tracer_provider=telemetry.tracer_provider, capture_content=True)
    try:
        OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test").chat(MESSAGES)
    finally:
        llmkit.uninstrument()
    attributes = dict(telemetry.named("chat gpt-4o").attributes or {})
    assert json.loads(str(attributes["gen_ai.input.messages"]))[0]["parts"][0]["content"] == "Capital of France?"
    assert "Paris" in str(attributes["gen_ai.output.messages"])


class City(BaseModel):
    name: str


def test_structured_predict_nests_its_calls(otel: Telemetry, usage_server: UsageServer) -> None:
    usage_server.outputs.append('{"name": "Paris"}')
    llm = OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test")
    assert llm.structured_predict(City, PromptTemplate("Capital of {country}?"), country="France").name == "Paris"
    assert otel.tree() == [["structured_predict City", ["chat gpt-4o"]]]
    assert otel.named("structured_predict City").kind is SpanKind.INTERNAL


def test_structured_llm_nests_its_calls(otel: Telemetry, usage_server: UsageServer) -> None:
    usage_server.outputs.append('{"name": "Paris"}')
    llm = OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test").as_structured_llm(City)
    llm.chat(MESSAGES)
    assert otel.tree() == [["structured_llm City", ["chat gpt-4o"]]]


def test_predict_and_call_nests_its_calls(otel: Telemetry) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    answer = ScriptedLLM().predict_and_call([FunctionTool.from_defaults(add)], "What is 1 + 2?")
    assert answer.sources[0].tool_name == "add"
    (root,) = [span for span in otel.spans() if span.parent is None]
    assert root.name == "predict_and_call"
    (chat,) = otel.children(root)
    assert chat.name.startswith("chat ")
    assert dict(chat.attributes or {})["gen_ai.provider.name"] == "mock"


def test_each_retry_is_a_child_span_of_its_call(otel: Telemetry, fault_server: FaultServer) -> None:
    test_id = uuid.uuid4().hex
    llm = OpenAILike(
        model="5xx-then-ok",
        api_base=fault_server.url,
        default_headers={"x-test-id": test_id},
        retry_policy=FAST_RETRIES,
        max_retries=3,
    )
    llm.chat(MESSAGES)
    call = otel.named("chat 5xx-then-ok")
    retries = otel.children(call)
    assert [span.name for span in retries] == ["retry 1", "retry 2", "retry 3"]
    for span in retries:
        assert span.status.status_code is StatusCode.ERROR
        assert dict(span.attributes or {})["error.type"] == "ServerError"
    assert call.status.status_code is not StatusCode.ERROR


def test_a_call_that_fails_has_an_error_span(otel: Telemetry, fault_server: FaultServer) -> None:
    llm = OpenAILike(model="always-503", api_base=fault_server.url, retry_policy=FAST_RETRIES, max_retries=1)
    with pytest.raises(ServerError):
        llm.chat(MESSAGES)
    span = otel.named("chat always-503")
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "ServerError"
    (duration,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "ServerError"


def test_a_routed_call_is_a_tree_of_attempts(
    otel: Telemetry, fault_server: FaultServer, usage_server: UsageServer
) -> None:
    bad = OpenAILike(model="always-503", api_base=fault_server.url, retry_policy=FAST_RETRIES)
    good = OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test")
    router = Router(
        groups={"a": [Deployment(bad, name="bad")], "b": [Deployment(good, name="good")]}, fallbacks={"a": ["b"]}
    )
    router.chat(MESSAGES, model="a")
    assert otel.tree() == [
        ["router a", [["router_attempt bad", ["chat always-503"]], ["router_attempt good", ["chat gpt-4o"]]]]
    ]
    failed = otel.named("router_attempt bad")
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["llmkit.outcome"] == "error"
    assert dict(otel.named("router_attempt good").attributes or {})["llmkit.outcome"] == "ok"
    with pytest.raises(NoDeploymentAvailableError):
        Router(groups={"a": [Deployment(bad, name="bad")]}).chat(MESSAGES)
    assert otel.spans()[-1].name == "router a"
    assert otel.spans()[-1].status.status_code is StatusCode.ERROR


def test_a_routed_stream_is_a_tree_too(otel: Telemetry, usage_server: UsageServer) -> None:
    good = OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test")
    router = Router(groups={"a": [Deployment(good, name="good")]})
    list(router.stream_chat(MESSAGES))
    assert otel.tree() == [["router a", [["router_attempt good", ["chat gpt-4o"]]]]]


async def test_async_calls_nest_the_same(otel: Telemetry, usage_server: UsageServer) -> None:
    good = OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test")
    router = Router(groups={"a": [Deployment(good, name="good")]})
    await router.achat(MESSAGES)
    chunks = [chunk async for chunk in await router.astream_chat(MESSAGES)]
    assert chunks[-1].usage is not None
    assert otel.tree() == [["router a", [["router_attempt good", ["chat gpt-4o"]]]]] * 2


def test_calls_nest_under_the_users_active_span(otel: Telemetry, usage_server: UsageServer) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request"):
        OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test").chat(MESSAGES)
    assert otel.tree() == [["request", ["chat gpt-4o"]]]


def test_uninstrumented_calls_make_no_spans_and_import_no_opentelemetry(usage_server: UsageServer) -> None:
    code = (
        "import sys, llmkit\n"
        f"llm = llmkit.OpenAI(model='gpt-4o', api_base={usage_server.url!r}, api_key='sk-test')\n"
        "r = llm.chat([llmkit.ChatMessage(role='user', content='hi')])\n"
        "list(llm.stream_chat([llmkit.ChatMessage(role='user', content='hi')]))\n"
        "print(sorted(m for m in ('opentelemetry', 'genai_prices') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "traceparent" not in usage_server.requests[-1].headers


class SpanIdPropagator(TextMapPropagator):
    """A propagator other than the W3C ones: it writes the span id it finds in the context it is given."""

    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        return context

    def inject(self, carrier: Any, context: Any = None, setter: Any = default_setter) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid:
            setter.set(carrier, "x-span-id", format(span_context.span_id, "016x"))

    @property
    def fields(self) -> set[str]:
        return {"x-span-id"}


def test_requests_carry_every_configured_propagators_headers(otel: Telemetry, usage_server: UsageServer) -> None:
    llm = OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test")
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator(), SpanIdPropagator()])
    )
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        llm.chat(MESSAGES)
    finally:
        context.detach(token)
        propagate.set_global_textmap(previous)
    span = otel.named("chat gpt-4o")
    assert span.context is not None
    headers = usage_server.requests[-1].headers
    flags = span.context.trace_flags
    assert headers["traceparent"] == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{flags:02x}"
    assert headers["baggage"] == "tenant=acme"
    assert headers["x-span-id"] == f"{span.context.span_id:016x}"  # the call's span, given to the propagator
    llm.chat(MESSAGES)  # the default propagators again: no baggage now, no other header
    assert "baggage" not in usage_server.requests[-1].headers
    assert "x-span-id" not in usage_server.requests[-1].headers
