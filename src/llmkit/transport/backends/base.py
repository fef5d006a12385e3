"""The backend interface: what :class:`~llmkit.transport.HTTPTransport` needs from an HTTP library, and nothing more.

A backend sends one :class:`Outgoing` request (absolute URL, final headers, body bytes, per-phase timeouts) and
returns the response with its body unread; every failure below HTTP is a :class:`NetworkError` that says whether it
was a timeout and whether the request certainly never reached the server. Retries, deadlines, body caps, error
mapping and SSE are the transport's, written once over this interface.

Example:
    >>> Timeouts.of(30.0)
    Timeouts(connect=10.0, read=30.0, write=30.0, pool=30.0)
    >>> Timeouts.of(30.0).capped(2.0).read
    2.0
    >>> with_query("http://h/v1/models?a=1", {"onlyBase": True, "tag": ["x", "y"]})
    'http://h/v1/models?a=1&onlyBase=true&tag=x&tag=y'
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

#: At most this many seconds to connect when a single number is given for every phase.
MAX_CONNECT = 10.0
#: Connections kept open for reuse (per host); httpx keeps 20, so bursts of calls would reconnect.
MAX_KEEPALIVE = 100
#: Connections open at once (all hosts).
MAX_CONNECTIONS = 1000


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per phase of one request; None is no limit. ``read`` also bounds each wait for the next bytes of a
    body or stream."""

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None

    @classmethod
    def of(cls, value: Any) -> Timeouts:
        """From a number (every phase; connect at most 10 s), None (no limits), a ``Timeouts`` or an
        ``httpx.Timeout`` (anything with ``connect``/``read``/``write``/``pool``)."""
        if value is None:
            return cls(None, None, None, None)
        if isinstance(value, int | float):
            seconds = float(value)
            return cls(min(seconds, MAX_CONNECT), seconds, seconds, seconds)
        if isinstance(value, Timeouts):
            return value
        return cls(value.connect, value.read, value.write, value.pool)

    def capped(self, remaining: float) -> Timeouts:
        """Every phase bounded by ``remaining`` seconds (what is left of a call's deadline)."""
        return Timeouts(
            min(self.connect or remaining, remaining),
            min(self.read or remaining, remaining),
            min(self.write or remaining, remaining),
            min(self.pool or remaining, remaining),
        )


@dataclass(slots=True)
class Outgoing:
    """One request as it goes on the wire. ``extensions`` are httpx request extensions (ignored elsewhere)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeouts: Timeouts
    extensions: dict[str, Any] | None = None


class NetworkError(Exception):
    """A failure below HTTP (connect, TLS, timeout, reset, a broken body), whatever the library.

    ``timeout``: a timeout fired; ``unsent``: the request certainly never reached the server (the connection was
    never made), so sending it again cannot repeat its work. The message names the library's exception."""

    def __init__(self, cause: BaseException, *, timeout: bool = False, unsent: bool = False) -> None:
        self.kind = type(cause).__name__
        self.detail = str(cause)
        self.timeout = timeout
        self.unsent = unsent
        super().__init__(f"{self.kind}: {self.detail}")


class Response:
    """A response whose head has arrived. ``content`` is the body once the transport has read it."""

    __slots__ = ("content", "headers", "read_timeout", "status_code", "url")

    def __init__(self, status_code: int, headers: Mapping[str, str], url: str, read_timeout: float | None) -> None:
        self.status_code = status_code
        #: Case-insensitive.
        self.headers = headers
        self.url = url
        self.read_timeout = read_timeout
        self.content = b""

    @property
    def host(self) -> str:
        """The host the request went to."""
        return urlsplit(self.url).hostname or self.url

    @property
    def encoding(self) -> str:
        """The text encoding of the body: the ``charset`` of its content type, else UTF-8."""
        content_type = self.headers.get("content-type", "")
        for param in content_type.split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset" and value:
                try:
                    return codecs.lookup(value.strip("\"'")).name
                except LookupError:  # a charset Python does not know: read it as UTF-8
                    break
        return "utf-8"


class SyncResponse(Response):
    """A response read with blocking I/O."""

    __slots__ = ()

    @abstractmethod
    def iter_bytes(self) -> Iterator[bytes]:
        """The body, decoded (gzip...), as it arrives; a failure is a :class:`NetworkError`."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection: back to the pool when the body was read whole, else closed."""


class AsyncResponse(Response):
    """A response read on the event loop."""

    __slots__ = ()

    @abstractmethod
    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Async :meth:`SyncResponse.iter_bytes`."""

    @abstractmethod
    async def aclose(self) -> None:
        """Async :meth:`SyncResponse.close`."""

    def arrived(self) -> bytes | None:
        """The whole body when it has all arrived already (so reading it needs no wait), else None."""
        return None


@dataclass(frozen=True, slots=True)
class Settings:
    """What every pool llmkit creates shares."""

    timeouts: Timeouts
    follow_redirects: bool = False


class SyncBackend(ABC):
    """A blocking connection pool."""

    @property
    @abstractmethod
    def native(self) -> Any:
        """The library's own client (``urllib3.PoolManager``, ``httpx.Client``)."""

    @abstractmethod
    def send(self, request: Outgoing) -> SyncResponse:
        """Send; the response comes back with its body unread. Failures are :class:`NetworkError`."""

    @abstractmethod
    def close(self) -> None:
        """Close the pool (a client the user brought is left open: it is theirs)."""


class AsyncBackend(ABC):
    """A connection pool bound to one event loop."""

    _guard: asyncio.Task[None] | None = None

    @property
    @abstractmethod
    def native(self) -> Any:
        """The library's own client (``aiohttp.ClientSession``, ``httpx.AsyncClient``)."""

    @abstractmethod
    async def send(self, request: Outgoing) -> AsyncResponse:
        """Async :meth:`SyncBackend.send`."""

    @abstractmethod
    def _closer(self) -> Callable[[], Awaitable[object]]:
        """What closes the pool; it must not hold the backend (so a dropped backend can be collected)."""

    def abandon(self) -> None:  # noqa: B027 (most pools need nothing)
        """Drop the pool of an event loop that was closed without cancelling its tasks (its sockets close when
        collected)."""

    async def aclose(self) -> None:
        """Close the pool, from its own event loop."""
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.cancel()
        await self._closer()()

    def close_with_loop(self, on_closed: Callable[[], object]) -> None:
        """Close this pool when its event loop shuts down (``asyncio.run`` and ``asyncio.Runner`` cancel every task
        at the end: a task that waits forever gets to close the pool then), or when this backend is dropped (its
        transport collected) while the loop runs; then call ``on_closed()``."""
        close = self._closer()

        async def wait_for_shutdown() -> None:
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):  # a loop shutting down: nothing to report to
                    await close()
                on_closed()
                raise

        loop = asyncio.get_running_loop()
        guard = self._guard = loop.create_task(wait_for_shutdown(), name="llmkit: close HTTP pool")
        # A loop closed without cancelling its tasks (loop.close() alone) must not log "destroyed but pending".
        guard._log_destroy_pending = False  # type: ignore[attr-defined]
        weakref.finalize(self, _cancel_soon, loop, guard)


def _cancel_soon(loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
    # Collection may happen on any thread; the task is cancelled on its loop's (not at all once the loop is closed).
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(task.cancel)


def _query_value(value: Any) -> str:
    # httpx's rules, so every backend sends the same query string: JSON-style booleans, None as empty.
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def with_query(url: str, params: Mapping[str, Any]) -> str:
    """``url`` with ``params`` appended to its query (lists repeat the name)."""
    items = [
        (name, _query_value(item))
        for name, value in params.items()
        for item in (value if isinstance(value, list | tuple) else [value])
    ]
    if not items:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(items)


def split_origin(url: str) -> tuple[str, str]:
    """``("http://host:port", "/path?query")`` of an absolute URL."""
    slash = url.find("/", url.find("://") + 3)
    if slash < 0:
        return url, "/"
    query = url.find("?")
    if 0 <= query < slash:  # "http://host?x": no path
        return url[:query], "/" + url[query:]
    return url[:slash], url[slash:]
