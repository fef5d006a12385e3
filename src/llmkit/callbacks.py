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

import contextvars
import functools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmkit.types import Usage

if TYPE_CHECKING:
    from llmkit.usage.cost import Cost


#: The call or operation running now: a chat call made here becomes its child. Set only while someone listens.
_current: contextvars.ContextVar[LLMEvent | Operation | None] = contextvars.ContextVar("llmkit_call", default=None)
#: Handlers that see every LLM's calls (``llmkit.instrument()`` adds one).
_global_handlers: list[CallbackHandler] = []
#: The same, as the tuple a top-level event takes (kept here: not one tuple built per call).
_global_tuple: tuple[CallbackHandler, ...] = ()
#: Functions that add headers to an outgoing request (W3C ``traceparent``), given the current call.
_header_hooks: list[Callable[[LLMEvent | Operation | None, dict[str, str]], None]] = []


@functools.cache
def _pricer() -> Callable[[Usage | None], Cost]:
    """:func:`llmkit.usage.cost.cost_of`, imported on the first priced event, then kept (a function-level import
    costs on every tracked call)."""
    from llmkit.usage.cost import cost_of

    return cost_of


def current() -> LLMEvent | Operation | None:
    """The LLM call or operation running in this context (None when none, or when nobody listens)."""
    return _current.get()


def add_global_handler(handler: CallbackHandler) -> None:
    """Send every LLM's events to ``handler`` too (once, however often it is added)."""
    global _global_tuple
    if handler not in _global_handlers:
        _global_handlers.append(handler)
        _global_tuple = tuple(_global_handlers)


def remove_global_handler(handler: CallbackHandler) -> None:
    """Stop sending every LLM's events to ``handler``."""
    global _global_tuple
    if handler in _global_handlers:
        _global_handlers.remove(handler)
        _global_tuple = tuple(_global_handlers)


def add_header_hook(hook: Callable[[LLMEvent | Operation | None, dict[str, str]], None]) -> None:
    """Let ``hook`` add headers to every outgoing HTTP request (the transport calls it with the current call)."""
    if hook not in _header_hooks:
        _header_hooks.append(hook)


def remove_header_hook(hook: Callable[[LLMEvent | Operation | None, dict[str, str]], None]) -> None:
    """Undo :func:`add_header_hook`."""
    if hook in _header_hooks:
        _header_hooks.remove(hook)


def outgoing_headers(headers: dict[str, str]) -> None:
    """Add the hooks' headers to ``headers`` (the transport calls this; nothing happens without hooks)."""
    if _header_hooks:
        node = _current.get()
        for hook in _header_hooks:
            hook(node, headers)


def _listeners(own: list[CallbackHandler], parent: LLMEvent | Operation | None) -> tuple[CallbackHandler, ...]:
    """An event's handlers: its LLM's, its enclosing calls' (a router's handler sees its deployments' calls), and the
    global ones; each once."""
    inherited = parent.handlers if parent is not None else _global_tuple
    if not own:
        return inherited
    merged = list(own)
    merged.extend(handler for handler in inherited if handler not in merged)
    return tuple(merged)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """A failed attempt the transport retries: which attempt (from 1), the wait before the next one, the error, and
    when the attempt started and failed (``time.time_ns()``)."""

    attempt: int
    delay: float
    error: BaseException
    started_ns: int | None = None
    ended_ns: int = field(default_factory=time.time_ns)


@dataclass(eq=False, slots=True)
class LLMEvent:
    """One LLM call as callbacks see it: ``kind`` is ``chat`` or ``complete``, ``payload`` the messages or prompt.

    ``provider`` and ``model`` name who is called (the model requested), ``parameters`` the sampling settings that
    apply (temperature, max_tokens...), ``parent`` the enclosing operation or call (None at the top),
    ``retries`` the transport's retries of this call. ``scratch`` is for handlers' own state (a span)."""

    kind: str
    payload: Any
    kwargs: dict[str, Any]
    llm: str
    provider: str = ""
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    parent: LLMEvent | Operation | None = None
    handlers: tuple[CallbackHandler, ...] = ()
    started_at: float = field(default_factory=time.perf_counter)
    started_ns: int = field(default_factory=time.time_ns)
    ended_at: float | None = None
    response: Any = None
    usage: Usage | None = None
    finish_reason: str | None = None
    error: BaseException | None = None
    retries: list[RetryEvent] = field(default_factory=list)
    scratch: dict[Any, Any] = field(default_factory=dict)
    _cost: Cost | None = field(default=None, init=False, repr=False)
    _event_id: str | None = field(default=None, init=False, repr=False)

    @property
    def event_id(self) -> str:
        """A unique id (hex), made when first asked for: most calls never need one, and making it costs microseconds
        on every call."""
        if self._event_id is None:
            self._event_id = uuid.uuid4().hex
        return self._event_id

    @property
    def elapsed(self) -> float:
        """Seconds since the call started (until it ended, once it has)."""
        return (self.ended_at if self.ended_at is not None else time.perf_counter()) - self.started_at

    @property
    def cost(self) -> Cost:
        """What the call cost (see :mod:`llmkit.usage.cost`): unknown until it ended with a usage. Priced once, however
        many handlers ask."""
        if self._cost is None or self.ended_at is None:
            self._cost = _pricer()(self.usage)
        return self._cost


@dataclass(eq=False, slots=True)
class Operation:
    """A unit of work that makes LLM calls: ``structured_predict``, ``predict_and_call``, ``structured_llm``,
    ``router``, ``router_attempt``, or a gateway's ``request``. The calls made inside are its children.

    Open one with :func:`operation` (or :func:`begin`/:func:`finish` when it outlives a block, as a stream does)."""

    kind: str
    attributes: dict[str, Any]
    parent: LLMEvent | Operation | None
    handlers: tuple[CallbackHandler, ...]
    started_at: float = field(default_factory=time.perf_counter)
    ended_at: float | None = None
    error: BaseException | None = None
    scratch: dict[Any, Any] = field(default_factory=dict)
    _event_id: str | None = field(default=None, init=False, repr=False)

    @property
    def event_id(self) -> str:
        """A unique id (hex), made when first asked for."""
        if self._event_id is None:
            self._event_id = uuid.uuid4().hex
        return self._event_id

    @property
    def elapsed(self) -> float:
        """Seconds since the operation started (until it ended, once it has)."""
        return (self.ended_at if self.ended_at is not None else time.perf_counter()) - self.started_at


_UNSET: Any = object()


def begin(
    kind: str, manager: CallbackManager | None = None, parent: Any = _UNSET, **attributes: Any
) -> Operation | None:
    """Start an operation (child of ``parent``, by default the current call); None when nobody would listen."""
    own = manager.handlers if manager is not None else []
    parent_node = _current.get() if parent is _UNSET else parent
    if not own and parent_node is None and not _global_handlers:
        return None
    op = Operation(kind, attributes, parent_node, _listeners(own, parent_node))
    for handler in op.handlers:
        handler.on_operation_start(op)
    return op


def finish(op: Operation | None, error: BaseException | None = None) -> None:
    """End ``op`` (once; None is ignored), with the error that ended it if any."""
    if op is None or op.ended_at is not None:
        return
    op.ended_at, op.error = time.perf_counter(), error
    for handler in op.handlers:
        handler.on_operation_end(op)


class scope:
    """Make ``node`` the current call for the block (calls made inside become its children); None does nothing."""

    __slots__ = ("node", "token")

    def __init__(self, node: LLMEvent | Operation | None) -> None:
        self.node = node
        self.token: contextvars.Token[LLMEvent | Operation | None] | None = None

    def __enter__(self) -> LLMEvent | Operation | None:
        if self.node is not None:
            self.token = _current.set(self.node)
        return self.node

    def __exit__(self, *exc_info: object) -> None:
        if self.token is not None:
            _current.reset(self.token)
            self.token = None


class operation:
    """An operation around a block: ``with operation("structured_predict", llm.callback_manager, output="Song"):``.

    The calls made inside are its children; an exception ends it with that error. Nothing happens when nobody
    listens.

    Example:
        >>> from llmkit import MockLLM, ChatMessage
        >>> llm = MockLLM()
        >>> with operation("request", llm.callback_manager, route="/v1/chat/completions") as op:
        ...     _ = llm.chat([ChatMessage(role="user", content="hi")])
        >>> op is None  # nobody listens
        True
    """

    __slots__ = ("attributes", "kind", "manager", "op", "token")

    def __init__(self, kind: str, manager: CallbackManager | None = None, **attributes: Any) -> None:
        self.kind, self.manager, self.attributes = kind, manager, attributes
        self.op: Operation | None = None
        self.token: contextvars.Token[LLMEvent | Operation | None] | None = None

    def __enter__(self) -> Operation | None:
        self.op = begin(self.kind, self.manager, **self.attributes)
        if self.op is not None:
            self.token = _current.set(self.op)
        return self.op

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        if self.token is not None:
            _current.reset(self.token)
        finish(self.op, exc)


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

    def on_llm_retry(self, event: LLMEvent, retry: RetryEvent) -> None:
        """The transport will retry ``event``'s call (see :class:`RetryEvent`); ``event.retries`` lists them all."""

    def on_operation_start(self, op: Operation) -> None:
        """An operation (structured prediction, tool calling, routing...) started."""

    def on_operation_end(self, op: Operation) -> None:
        """An operation ended; ``op.error`` is set if it failed."""


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

    @property
    def listening(self) -> bool:
        """Whether a call made now would reach any handler (its own, an enclosing call's, a global one)."""
        return bool(self.handlers or _global_handlers) or _current.get() is not None

    def start(
        self,
        kind: str,
        payload: Any,
        kwargs: dict[str, Any],
        llm: str,
        provider: str = "",
        model: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> LLMEvent:
        """Open an event (a child of the current call, if any) and tell the handlers. ``parameters`` is the event's
        own (handlers only read it), so a caller may pass one it keeps for every call with the same settings."""
        parent = _current.get()
        event = LLMEvent(  # positional: a dataclass's __init__ matches keywords at a third of the event's cost
            kind,
            payload,
            kwargs,
            llm,
            provider or llm,
            model,
            parameters if parameters is not None else {},
            parent,
            _listeners(self.handlers, parent),
        )
        for handler in event.handlers:
            handler.on_llm_start(event)
        return event

    def token(self, event: LLMEvent, delta: str) -> None:
        """Report a streamed delta."""
        for handler in event.handlers:
            handler.on_llm_token(event, delta)

    def end(self, event: LLMEvent, response: Any, usage: Usage | None) -> None:
        """Close an event successfully."""
        event.response, event.usage, event.ended_at = response, usage, time.perf_counter()
        for handler in event.handlers:
            handler.on_llm_end(event)

    def error(self, event: LLMEvent, error: BaseException) -> None:
        """Close an event with an error."""
        event.error, event.ended_at = error, time.perf_counter()
        for handler in event.handlers:
            handler.on_llm_error(event)

    def attempt(self, attempt: AttemptEvent) -> None:
        """Report a router attempt."""
        for handler in _listeners(self.handlers, _current.get()):
            handler.on_attempt(attempt)

    def retry(self, attempt: int, delay: float, error: BaseException, started_ns: int | None = None) -> None:
        """Report a retry, with the call it belongs to (the current one) when someone listens to that call."""
        node = _current.get()
        if isinstance(node, LLMEvent):
            retry = RetryEvent(attempt, delay, error, started_ns)
            node.retries.append(retry)
            for handler in node.handlers:
                handler.on_llm_retry(node, retry)
                handler.on_retry(attempt, delay, error)
            return
        for handler in _listeners(self.handlers, node):
            handler.on_retry(attempt, delay, error)
