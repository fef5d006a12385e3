"""Observability: ``llmkit.instrument()`` traces and meters every LLM call with OpenTelemetry (extra ``otel``).

Example:
    >>> import llmkit
    >>> handler = llmkit.instrument()  # the global tracer and meter providers
    >>> llmkit.uninstrument()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmkit.callbacks import add_global_handler, add_header_hook, remove_global_handler, remove_header_hook
from llmkit.errors import missing_extra

if TYPE_CHECKING:
    from llmkit.observability.otel import OpenTelemetryHandler

_installed: OpenTelemetryHandler | None = None


def instrument(
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool | None = None,
    metrics: bool = True,
) -> OpenTelemetryHandler:
    """Trace every LLM call (spans, metrics, ``traceparent`` on outgoing requests) with OpenTelemetry, using the
    global tracer and meter providers unless given others. Message content is recorded only with
    ``capture_content=True`` (or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``). Calling it again
    replaces the previous instrumentation. ``metrics=False`` records spans only (the SDK's histograms cost about as
    much per call as its spans)."""
    global _installed
    try:
        from llmkit.observability.otel import OpenTelemetryHandler
    except ImportError as exc:
        raise missing_extra("opentelemetry-api", "otel") from exc
    uninstrument()
    handler = OpenTelemetryHandler(tracer_provider, meter_provider, capture_content, metrics)
    add_global_handler(handler)
    add_header_hook(handler.inject)
    _installed = handler
    return handler


def uninstrument() -> None:
    """Stop what :func:`instrument` started (no-op when nothing is instrumented)."""
    global _installed
    if _installed is not None:
        remove_global_handler(_installed)
        remove_header_hook(_installed.inject)
        _installed = None


__all__ = ["instrument", "uninstrument"]
