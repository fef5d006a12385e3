"""When to retry, and how long to wait: exponential backoff with jitter, honouring the server's hints."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import httpx

from llmkit.errors import APIConnectionError, APIStatusError, ConflictError, LLMError, RateLimitError, ServerError

if TYPE_CHECKING:
    from llmkit.callbacks import CallbackManager

T = TypeVar("T")

#: Statuses worth another try: timeout, conflict, rate limit, and every server error.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    """408, 409, 429 and 5xx are retried; other 4xx never are."""
    return status in RETRYABLE_STATUSES or status >= 500


def is_retryable_error(error: LLMError) -> bool:
    """Whether a failed attempt may be retried: connection errors, 408, 409, 429 and 5xx."""
    if isinstance(error, APIConnectionError):
        return True
    if isinstance(error, RateLimitError | ServerError | ConflictError):
        return True
    return isinstance(error, APIStatusError) and error.status_code == 408


def parse_retry_after(headers: Mapping[str, str] | httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date; None when absent."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(float(email.utils.mktime_tz(parsed)) - time.time(), 0.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    The n-th retry waits ``min(initial_delay * 2**(n-1), max_delay)``, reduced by up to 25% at random, unless the
    server said how long to wait (``Retry-After``/``retry-after-ms``), which is honoured up to ``max_retry_after``.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry ``retry_number`` (1-based)."""
        if retry_after is not None and retry_after <= self.max_retry_after:
            return retry_after
        backoff = min(self.initial_delay * 2.0 ** (retry_number - 1), self.max_delay)
        return backoff * (1 - 0.25 * random.random())

    def next_delay(
        self,
        error: LLMError,
        attempt: int,
        retries: int,
        callbacks: CallbackManager | None = None,
        deadline: float | None = None,
        replayable: bool = True,
        started_ns: int | None = None,
    ) -> float | None:
        """The wait before retrying after failed ``attempt`` (1-based), or None when ``error`` is final: not
        retryable, out of retries, past ``deadline`` (``time.monotonic()``), or not ``replayable`` (the request is
        not safe to send twice and may have reached the server). Each retry is reported to ``callbacks``, with when the
        failed attempt started (``started_ns``, ``time.time_ns()``) for tracing."""
        if attempt > retries or not replayable or not is_retryable_error(error):
            return None
        delay = self.delay(attempt, getattr(error, "retry_after", None))
        if deadline is not None and time.monotonic() + delay >= deadline:
            return None
        if callbacks is not None:
            callbacks.retry(attempt, delay, error, started_ns)
        return delay


#: How a driver reads a failed attempt: the llmkit error, and whether replaying the request is safe; None means the
#: exception is not a failure of the attempt (a bug, a cancellation) and propagates untouched.
Classify = Callable[[Exception], "tuple[LLMError, bool] | None"]


@dataclass(slots=True)
class Retrying:
    """The one retry loop, driven sync (:meth:`call`) or async (:meth:`acall`): run an attempt; on failure ask the
    policy whether and when to try again; raise the typed error when not.

    Example:
        >>> from llmkit.errors import ServerError
        >>> tries = []
        >>> def attempt():
        ...     tries.append(1)
        ...     if len(tries) < 3:
        ...         raise ServerError("busy", status_code=503)
        ...     return "ok"
        >>> Retrying(RetryPolicy(initial_delay=0.001), retries=2, classify=lambda e: (e, True)).call(attempt)
        'ok'
    """

    policy: RetryPolicy
    retries: int
    classify: Classify
    callbacks: CallbackManager | None = None
    deadline: float | None = None

    def delay_after(self, exc: Exception, attempt: int, started_ns: int) -> float:
        """The wait before the next attempt after ``attempt`` (1-based, started at ``started_ns``) failed with
        ``exc``; raises the typed error when there is none, and ``exc`` itself when it is not a failure of the
        attempt. For drivers that run their own loop (the transport, to build nothing when the first try succeeds)."""
        failure = self.classify(exc)
        if failure is None:
            raise exc
        error, replayable = failure
        delay = self.policy.next_delay(
            error, attempt, self.retries, self.callbacks, self.deadline, replayable, started_ns
        )
        if delay is None:
            raise error from (exc if exc is not error else None)
        return delay

    def call(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it succeeds or the policy says stop."""
        number = 0
        while True:
            number += 1
            started_ns = time.time_ns()
            try:
                return attempt()
            except Exception as exc:  # classified: unknown exceptions propagate from delay_after
                delay = self.delay_after(exc, number, started_ns)
            time.sleep(delay)

    async def acall(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Async :meth:`call`."""
        number = 0
        while True:
            number += 1
            started_ns = time.time_ns()
            try:
                return await attempt()
            except Exception as exc:  # classified: unknown exceptions propagate from delay_after
                delay = self.delay_after(exc, number, started_ns)
            await asyncio.sleep(delay)
