"""OpenTelemetry for every LLM call, following the GenAI semantic conventions (extra ``otel``).

One span per call (``chat {model}``, kind CLIENT) with ``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model`` and the sampling parameters, then ``gen_ai.response.model``, ``gen_ai.response.id``,
``gen_ai.response.finish_reasons`` and ``gen_ai.usage.*`` (or ``error.type`` and an error status); one child span per
transport retry (``retry {n}``, the failed attempt) and a span per operation (``structured_predict``,
``predict_and_call``, ``structured_llm``, ``router`` and each ``router_attempt``), so a routed call reads as a tree.
The metrics ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration`` are recorded per call. Message
content is captured only when asked (``capture_content=True``, or the environment's
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).
Outgoing HTTP requests carry the W3C ``traceparent`` of their call's span (or of the active span).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmkit.callbacks import CallbackHandler, LLMEvent, Operation, RetryEvent
from llmkit.types import ChatMessage, ChatResponse, CompletionResponse, Usage

#: How llmkit's call kinds are named by the conventions' ``gen_ai.operation.name``.
OPERATION_NAMES = {"chat": "chat", "complete": "text_completion"}
#: Request parameters -> their attribute.
PARAMETER_ATTRIBUTES = {
    "temperature": "gen_ai.request.temperature",
    "max_tokens": "gen_ai.request.max_tokens",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "seed": "gen_ai.request.seed",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "stop": "gen_ai.request.stop_sequences",
}
# The conventions' advised bucket boundaries.
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_RESPONSES = (ChatResponse, CompletionResponse)
#: Series whose constant attributes are kept (beyond it they are built per call).
_CACHED_SERIES = 1024
#: Parameter sets whose attributes are kept, per series.
_CACHED_PARAMETERS = 64


def _attribute(value: Any) -> Any:
    """A value OpenTelemetry accepts: scalars, lists of strings; anything else as its string."""
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    return str(value)


class _Metric:
    """The attribute sets of one series' points: the duration's and the two token types'."""

    __slots__ = ("duration", "input", "output")

    def __init__(self, base: dict[str, Any], response_model: str | None) -> None:
        self.duration = dict(base)
        if response_model is not None:
            self.duration["gen_ai.response.model"] = response_model
        self.input = {**self.duration, "gen_ai.token.type": "input"}
        self.output = {**self.duration, "gen_ai.token.type": "output"}


class _Constants:
    """What every call of one (kind, provider, model) shares: the span name, its first attributes, and the metric
    attribute sets by response model. Built once: a call then copies nothing it does not change (the SDK copies
    the attributes it is given, so these dicts are never mutated)."""

    __slots__ = ("base", "metrics", "name", "parameters")

    def __init__(self, kind: str, provider: str, model: str | None) -> None:
        operation = OPERATION_NAMES.get(kind, kind)
        self.name = f"{operation} {model}" if model else operation
        self.base: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.provider.name": provider}
        if model:
            self.base["gen_ai.request.model"] = model
        self.metrics: dict[str | None, _Metric] = {}
        self.parameters: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}

    def with_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The start attributes with these sampling parameters: an LLM's calls mostly repeat the same few, so each
        set is built once (a set holding an unhashable value, a list of stop sequences, is built per call)."""
        try:
            key = tuple(parameters.items())
            found = self.parameters.get(key)
        except TypeError:
            return _with_parameters(self.base, parameters)
        if found is None:
            found = _with_parameters(self.base, parameters)
            if len(self.parameters) < _CACHED_PARAMETERS:
                self.parameters[key] = found
        return found

    def metric(self, response_model: str | None) -> _Metric:
        found = self.metrics.get(response_model)
        if found is None:
            found = _Metric(self.base, response_model)
            if len(self.metrics) < _CACHED_SERIES:
                self.metrics[response_model] = found
        return found


def _with_parameters(base: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    attributes = dict(base)
    for name, value in parameters.items():
        key = PARAMETER_ATTRIBUTES.get(name)
        if key is not None:
            attributes[key] = [value] if name == "stop" and isinstance(value, str) else _attribute(value)
    return attributes


def _messages(payload: Any) -> str:
    """The input as the conventions' ``gen_ai.input.messages`` JSON (role and text parts)."""
    if isinstance(payload, str):
        return json.dumps([{"role": "user", "parts": [{"type": "text", "content": payload}]}])
    messages: Sequence[ChatMessage] = payload
    return json.dumps(
        [{"role": str(m.role.value), "parts": [{"type": "text", "content": m.content or ""}]} for m in messages]
    )


class OpenTelemetryHandler(CallbackHandler):
    """Callbacks -> OpenTelemetry spans and metrics (see the module docstring). Usually installed for every LLM at
    once by :func:`llmkit.instrument`; it can also go in one LLM's ``CallbackManager``."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: otel_metrics.MeterProvider | None = None,
        capture_content: bool | None = None,
        metrics: bool = True,
    ) -> None:
        from llmkit import __version__

        self.metrics = metrics
        self.tracer = trace.get_tracer("llmkit", __version__, tracer_provider=tracer_provider)
        meter = otel_metrics.get_meter("llmkit", __version__, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        if capture_content is None:
            capture_content = os.environ.get(_CAPTURE_ENV, "").lower() in ("1", "true", "yes")
        self.capture_content = capture_content
        self._by_call: dict[tuple[str, str, str | None], _Constants] = {}
        self._textmap: TextMapPropagator | None = None
        self._injectors: tuple[_Injector, ...] = ()

    # -- spans -------------------------------------------------------------------------------------------------------

    def span_of(self, node: LLMEvent | Operation | None) -> trace.Span | None:
        """The span of ``node``, or of its nearest ancestor that has one."""
        while node is not None:
            span = node.scratch.get(self)
            if span is not None:
                return span  # type: ignore[no-any-return]
            node = node.parent
        return None

    def _context(self, parent: LLMEvent | Operation | None) -> Any:
        span = self.span_of(parent)
        return trace.set_span_in_context(span) if span is not None else None  # None: the active OTel context

    def on_operation_start(self, op: Operation) -> None:
        attributes = {f"llmkit.{key}": _attribute(value) for key, value in op.attributes.items()}
        attributes["llmkit.operation"] = op.kind
        label = op.attributes.get("deployment") or op.attributes.get("group") or op.attributes.get("output_cls")
        name = f"{op.kind} {label}" if label else op.kind
        op.scratch[self] = self.tracer.start_span(
            name, context=self._context(op.parent), kind=SpanKind.INTERNAL, attributes=attributes
        )

    def on_operation_end(self, op: Operation) -> None:
        span = op.scratch.pop(self, None)
        if span is None:
            return
        if "outcome" in op.attributes:
            span.set_attribute("llmkit.outcome", op.attributes["outcome"])
        if op.error is not None:
            _fail(span, op.error)
        span.end()

    def _constants(self, event: LLMEvent) -> _Constants:
        key = (event.kind, event.provider, event.model)
        found = self._by_call.get(key)
        if found is None:
            found = _Constants(*key)
            if len(self._by_call) < _CACHED_SERIES:  # a bound on memory however many model names appear
                self._by_call[key] = found
        return found

    def on_llm_start(self, event: LLMEvent) -> None:
        constants = self._constants(event)
        attributes = constants.with_parameters(event.parameters) if event.parameters else constants.base
        if self.capture_content:
            attributes = {**attributes, "gen_ai.input.messages": _messages(event.payload)}
        parent = event.parent
        event.scratch[self] = self.tracer.start_span(
            constants.name,
            # None: the active OpenTelemetry context (a user's span), read by the SDK itself.
            context=None if parent is None else self._context(parent),
            kind=SpanKind.CLIENT,
            attributes=attributes,  # the SDK copies them: the shared dict stays as it is
            start_time=event.started_ns,
        )

    def on_llm_retry(self, event: LLMEvent, retry: RetryEvent) -> None:
        parent = event.scratch.get(self)
        if parent is None:
            return
        span = self.tracer.start_span(
            f"retry {retry.attempt}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes={"llmkit.retry.attempt": retry.attempt, "llmkit.retry.delay": retry.delay},
            start_time=retry.started_ns,
        )
        _fail(span, retry.error)
        span.end(end_time=retry.ended_ns)

    def on_llm_end(self, event: LLMEvent) -> None:
        span = event.scratch.pop(self, None)
        if span is None:
            return
        recording = span.is_recording()
        if not recording and not self.metrics:  # sampled out: nothing to record
            span.end()
            return
        response, usage = event.response, event.usage
        response_model = usage.model if usage is not None else None
        raw = getattr(response, "raw", None)
        if isinstance(raw, dict) and not response_model:
            response_model = raw.get("model")
        if not isinstance(response_model, str) or not response_model:
            response_model = None
        if recording:
            span.set_attributes(self._end_attributes(event, response, usage, raw, response_model))
        span.end()
        if not self.metrics:
            return
        constants = self._constants(event)
        metric = constants.metric(response_model)
        ended = event.ended_at
        self.duration.record((ended if ended is not None else time.perf_counter()) - event.started_at, metric.duration)
        if usage is not None:
            if usage.prompt_tokens is not None:
                self.token_usage.record(usage.prompt_tokens, metric.input)
            if usage.completion_tokens is not None:
                self.token_usage.record(usage.completion_tokens, metric.output)

    def _end_attributes(
        self, event: LLMEvent, response: Any, usage: Usage | None, raw: Any, response_model: str | None
    ) -> dict[str, Any]:
        """What the answer says, for one ``set_attributes`` call (the SDK takes a lock per call)."""
        attributes: dict[str, Any] = {}
        if response_model is not None:
            attributes["gen_ai.response.model"] = response_model
        if isinstance(raw, dict):
            response_id = raw.get("id")
            if isinstance(response_id, str):
                attributes["gen_ai.response.id"] = response_id
        finish = event.finish_reason
        if finish is None and isinstance(response, _RESPONSES):
            finish = response.additional_kwargs.get("finish_reason")
        if isinstance(finish, str) and finish:
            attributes["gen_ai.response.finish_reasons"] = [finish]
        if usage is not None:
            if usage.prompt_tokens is not None:
                attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            if usage.completion_tokens is not None:
                attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
            if usage.cache_read_tokens is not None:
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
            if usage.cache_write_tokens is not None:
                attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
            if usage.reasoning_tokens is not None:
                attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
            cost = event.cost
            if cost.amount is not None:
                attributes["llmkit.cost" if cost.currency == "USD" else "llmkit.cost.credits"] = float(cost.amount)
        if self.capture_content and response is not None:
            text = response.text if isinstance(response, _RESPONSES) else str(response)
            attributes["gen_ai.output.messages"] = json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish or ""}]
            )
        return attributes

    def on_llm_error(self, event: LLMEvent) -> None:
        span = event.scratch.pop(self, None)
        if span is None or event.error is None:
            return
        _fail(span, event.error)
        span.end()
        if not self.metrics:
            return
        metric = dict(self._constants(event).base)
        metric["error.type"] = type(event.error).__qualname__
        self.duration.record(event.elapsed, metric)

    # -- propagation ---------------------------------------------------------------------------------------------------

    def inject(self, node: LLMEvent | Operation | None, headers: dict[str, str]) -> None:
        """Add ``traceparent`` (and the other configured propagators' headers) for ``node``'s span, else the active
        span's; nothing when there is none."""
        span = self.span_of(node)
        if span is None:
            propagate.inject(headers)  # the active span's
            return
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:
            self._textmap, self._injectors = textmap, _injectors(textmap)
        for inject in self._injectors:
            inject(span, headers)


_Injector = Callable[[trace.Span, dict[str, str]], None]


def _injectors(textmap: TextMapPropagator) -> tuple[_Injector, ...]:
    """How each configured propagator writes a span's headers. The W3C ones (the default) are written directly: the
    generic path builds a context for the span and looks the span up again in it, several µs per request."""
    propagators = getattr(textmap, "_propagators", None) if isinstance(textmap, CompositePropagator) else [textmap]
    if not isinstance(propagators, list | tuple):  # a composite whose parts cannot be read: it writes them all
        return (_generic(textmap),)
    return tuple(_injector(propagator) for propagator in propagators)


def _injector(propagator: TextMapPropagator) -> _Injector:
    if type(propagator) is TraceContextTextMapPropagator:
        return _traceparent
    if type(propagator) is W3CBaggagePropagator:
        # Baggage lives in the current context, which a span's context only extends: the same entries either way.
        return lambda span, headers: propagator.inject(headers)
    return _generic(propagator)


def _generic(propagator: TextMapPropagator) -> _Injector:
    return lambda span, headers: propagator.inject(headers, context=trace.set_span_in_context(span))


def _traceparent(span: trace.Span, headers: dict[str, str]) -> None:
    """What :class:`TraceContextTextMapPropagator` writes for ``span``."""
    context = span.get_span_context()
    if context == trace.INVALID_SPAN_CONTEXT:
        return
    headers["traceparent"] = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    if context.trace_state:
        headers["tracestate"] = context.trace_state.to_header()


def _fail(span: trace.Span, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {str(error)[:200]}"))


__all__ = ["OpenTelemetryHandler"]
