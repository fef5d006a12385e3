"""The transport: all network I/O of llmkit, sync and async, in one place.

Providers build :class:`Request` objects and parse answers; :class:`HTTPTransport` sends them with pooling,
timeouts, retries (backoff with jitter, ``Retry-After``), typed errors, SSE decoding and polling.
"""

from llmkit.transport.client import (
    DEFAULT_TIMEOUT,
    HTTPTransport,
    Request,
    TimeoutTypes,
    as_timeout,
)
from llmkit.transport.errors import ErrorHook, status_error
from llmkit.transport.polling import PollSchedule, PollTimeout, apoll, poll
from llmkit.transport.retry import RetryPolicy, is_retryable_error, is_retryable_status, parse_retry_after
from llmkit.transport.sse import ServerSentEvent, SSEDecoder, aiter_sse, iter_sse

__all__ = [
    "DEFAULT_TIMEOUT",
    "ErrorHook",
    "HTTPTransport",
    "PollSchedule",
    "PollTimeout",
    "Request",
    "RetryPolicy",
    "SSEDecoder",
    "ServerSentEvent",
    "TimeoutTypes",
    "aiter_sse",
    "apoll",
    "as_timeout",
    "is_retryable_error",
    "is_retryable_status",
    "iter_sse",
    "parse_retry_after",
    "poll",
    "status_error",
]
