"""Callbacks: every LLM call reports start, end, error, streamed tokens, retries and usage here.

This is the hook for tracing and metering.

Example:
    >>> from llmkit.callbacks import CallbackManager, TokenCountingHandler
    >>> counter = TokenCountingHandler()
    >>> manager = CallbackManager([counter])
    >>> counter.total_tokens
    0
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from llmkit.types import Usage


@dataclass
class LLMEvent:
    """One LLM call as callbacks see it: ``kind`` is ``chat`` or ``complete``, ``payload`` the messages or prompt."""

    kind: str
    payload: Any
    kwargs: dict[str, Any]
    llm: str
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.perf_counter)
    response: Any = None
    usage: Usage | None = None
    error: BaseException | None = None

    @property
    def elapsed(self) -> float:
        """Seconds since the call started."""
        return time.perf_counter() - self.started_at


@dataclass(frozen=True, slots=True)
class AttemptEvent:
    """One attempt of a routed call: which deployment of which group, how it ended, and how long it took.

    ``outcome`` is ``"ok"``, ``"error"`` (``error`` set), or ``"stream-broken"`` (failed after chunks were sent).
    """

    group: str
    deployment: str
    outcome: str
    latency: float
    error: BaseException | None = None


class CallbackHandler:
    """Base handler: override the hooks you need. Every hook is a no-op here."""

    def on_llm_start(self, event: LLMEvent) -> None:
        """A call started."""

    def on_llm_token(self, event: LLMEvent, delta: str) -> None:
        """A streamed call produced ``delta``."""

    def on_llm_end(self, event: LLMEvent) -> None:
        """A call finished; ``event.response`` and ``event.usage`` are set."""

    def on_llm_error(self, event: LLMEvent) -> None:
        """A call failed; ``event.error`` is set."""

    def on_retry(self, attempt: int, delay: float, error: BaseException) -> None:
        """The transport will retry after ``delay`` seconds because of ``error`` (attempt counts from 1)."""

    def on_attempt(self, attempt: AttemptEvent) -> None:
        """A router attempt ended (see :class:`AttemptEvent`)."""


class TokenCountingHandler(CallbackHandler):
    """Keeps running totals of the token usage reported by every call (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.calls = 0
        self.unknown_usage_calls = 0

    def __getstate__(self) -> dict[str, Any]:
        # The counts travel with a pickled or deep-copied LLM; the lock is per object.
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def on_llm_end(self, event: LLMEvent) -> None:
        with self._lock:
            self.calls += 1
            usage = event.usage
            if usage is None or usage.prompt_tokens is None:
                self.unknown_usage_calls += 1
                return
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens or 0

    def reset(self) -> None:
        """Zero the totals."""
        with self._lock:
            self.prompt_tokens = self.completion_tokens = self.calls = self.unknown_usage_calls = 0


class CallbackManager:
    """Dispatches LLM events to handlers. A handler that raises is a bug in the handler and propagates.

    Example:
        >>> class Printer(CallbackHandler):
        ...     def on_llm_end(self, event): print(event.kind, "done")
        >>> manager = CallbackManager([Printer()])
    """

    def __init__(self, handlers: list[CallbackHandler] | None = None) -> None:
        self.handlers: list[CallbackHandler] = list(handlers or [])

    def add_handler(self, handler: CallbackHandler) -> None:
        """Add a handler."""
        self.handlers.append(handler)

    def remove_handler(self, handler: CallbackHandler) -> None:
        """Remove a handler."""
        self.handlers.remove(handler)

    def start(self, kind: str, payload: Any, kwargs: dict[str, Any], llm: str) -> LLMEvent:
        """Open an event and tell the handlers."""
        event = LLMEvent(kind=kind, payload=payload, kwargs=kwargs, llm=llm)
        for handler in self.handlers:
            handler.on_llm_start(event)
        return event

    def token(self, event: LLMEvent, delta: str) -> None:
        """Report a streamed delta."""
        for handler in self.handlers:
            handler.on_llm_token(event, delta)

    def end(self, event: LLMEvent, response: Any, usage: Usage | None) -> None:
        """Close an event successfully."""
        event.response, event.usage = response, usage
        for handler in self.handlers:
            handler.on_llm_end(event)

    def error(self, event: LLMEvent, error: BaseException) -> None:
        """Close an event with an error."""
        event.error = error
        for handler in self.handlers:
            handler.on_llm_error(event)

    def attempt(self, attempt: AttemptEvent) -> None:
        """Report a router attempt."""
        for handler in self.handlers:
            handler.on_attempt(attempt)

    def retry(self, attempt: int, delay: float, error: BaseException) -> None:
        """Report a retry."""
        for handler in self.handlers:
            handler.on_retry(attempt, delay, error)
