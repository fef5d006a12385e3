"""The default async backend: aiohttp's ``ClientSession`` (several times httpx's throughput on one event loop).

A session belongs to the event loop it was made on; the transport keeps one per loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from llmkit.transport.backends.base import (
    MAX_CONNECTIONS,
    AsyncBackend,
    AsyncResponse,
    NetworkError,
    Outgoing,
    Settings,
    Timeouts,
)
from llmkit.transport.backends.deadlines import ReadDeadlines
from llmkit.transport.proxies import ProxyRoutes
from llmkit.transport.tls import verified_context


def network_error(exc: BaseException) -> NetworkError:
    """aiohttp's exception (or the OS's, or a timeout), classified."""
    unsent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return NetworkError(exc, timeout=isinstance(exc, asyncio.TimeoutError), unsent=unsent)


_NO_CONTENT_TYPE = ("Content-Type",)


def _timed_out(what: str, seconds: float) -> NetworkError:
    return NetworkError(TimeoutError(f"{what} within the read timeout ({seconds:g} s)"), timeout=True)


class AiohttpResponse(AsyncResponse):
    __slots__ = ("_deadlines", "_raw")

    def __init__(
        self, raw: aiohttp.ClientResponse, url: str, read_timeout: float | None, deadlines: ReadDeadlines
    ) -> None:
        AsyncResponse.__init__(self, raw.status, raw.headers, url, read_timeout)  # not super(): no proxy object
        self._raw, self._deadlines = raw, deadlines

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        readany, seconds, deadlines = self._raw.content.readany, self.read_timeout, self._deadlines
        try:
            while True:
                if seconds is None:
                    chunk = await readany()
                else:  # each wait for bytes under the read timeout
                    waiting = deadlines.start(seconds)
                    try:
                        chunk = await readany()
                    except asyncio.CancelledError:
                        if deadlines.stop(waiting):
                            raise _timed_out("no bytes arrived", seconds) from None
                        raise
                    finally:
                        deadlines.stop(waiting)
                if not chunk:
                    return
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:  # OSError: TimeoutError too
            raise network_error(exc) from exc

    def arrived(self) -> bytes | None:
        content = self._raw.content
        if not content.is_eof():
            return None
        chunks = []  # the whole body is buffered (usual for an answer that fits a few packets): take it, no waiting
        while data := content.read_nowait(-1):
            chunks.append(data)
        return b"".join(chunks)

    async def aclose(self) -> None:
        raw = self._raw
        if raw.content.at_eof():
            raw.release()  # read whole: back to the pool (already, usually)
        else:
            raw.close()  # unread data: the connection cannot be reused


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool, starting the read timeout of the request that got a connection (in that request's task)."""

    def __init__(self, deadlines: ReadDeadlines, **settings: Any) -> None:
        super().__init__(**settings)
        self._deadlines = deadlines

    async def connect(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        self._deadlines.begin()
        return connection


class AiohttpBackend(AsyncBackend):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._deadlines = ReadDeadlines(asyncio.get_running_loop())
        self._session = aiohttp.ClientSession(
            connector=_Connector(self._deadlines, limit=MAX_CONNECTIONS),
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,  # proxies are ours, from the environment
        )
        self._proxies = ProxyRoutes.from_env() or None
        self._default = (settings.timeouts, self._timeout(settings.timeouts))
        self._tls: ssl.SSLContext | None = None
        self._redirects = settings.follow_redirects
        self._tls_loading = asyncio.Lock()

    async def _tls_context(self) -> ssl.SSLContext:
        # Loading the certificate stores is blocking file I/O (~75 ms): done once an https request comes (or any
        # request of a client that follows redirects), in a thread (the loop keeps serving); a client that only
        # talks http:// never pays it. One load, however many requests come first: aiohttp pools connections per
        # context, so each must get the same one.
        async with self._tls_loading:
            if self._tls is None:
                self._tls = await asyncio.to_thread(verified_context, "aiohttp")
        return self._tls

    @property
    def native(self) -> aiohttp.ClientSession:
        return self._session

    @staticmethod
    def _timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
        # sock_connect: making a new connection. The read timeout is kept by ReadDeadlines (see deadlines.py): from
        # the moment a connection is held until the head has arrived, then each wait for body bytes. No bound on the
        # wait for a free connection (aiohttp would arm a timer per request for it, even when one is idle; the pool
        # holds 1000) and no write timeout (aiohttp has none).
        return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=timeouts.connect, sock_read=None)

    async def send(self, request: Outgoing) -> AsyncResponse:
        timeouts = request.timeouts
        timeout = self._default[1] if timeouts is self._default[0] else self._timeout(timeouts)
        seconds, deadlines = timeouts.read, self._deadlines
        headers, body = request.headers, request.body
        # the read timeout counts once a connection is held (the connector starts it): the wait for a pooled
        # connection and the connect are bounded as before, by the pool and by sock_connect
        # (a client that follows redirects may be sent from http:// to https://: it verifies with our context too)
        secure = self._redirects or request.url[:6].lower() == "https:"
        tls = (self._tls or await self._tls_context()) if secure else True
        waiting = None if seconds is None else deadlines.start(seconds, begun=False)
        try:
            raw = await self._session.request(
                request.method,
                request.url,
                data=body,
                headers=headers,
                # no Content-Type guessed for a body sent without one (httpx sends none either); asked per request:
                # set on the session, aiohttp builds a table of the skipped names for every request
                skip_auto_headers=_NO_CONTENT_TYPE if body is not None and "Content-Type" not in headers else None,
                timeout=timeout,
                allow_redirects=self._redirects,
                proxy=None if self._proxies is None else self._proxies.for_url(request.url),
                ssl=tls,
            )
        except asyncio.CancelledError:
            if waiting is not None and deadlines.stop(waiting):
                raise _timed_out("no answer arrived", seconds) from None  # type: ignore[arg-type]
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise network_error(exc) from exc
        finally:
            if waiting is not None:
                deadlines.stop(waiting)
        return AiohttpResponse(raw, request.url, seconds, deadlines)

    def _closer(self) -> Callable[[], Awaitable[object]]:
        session, deadlines = self._session, self._deadlines

        async def close() -> None:
            deadlines.close()
            await session.close()

        return close

    def abandon(self) -> None:
        session = self._session
        connector = session.connector
        session.detach()
        if connector is not None:
            # Marks the pool closed (so nothing warns when it is collected); closing its sockets needs the loop,
            # which is gone: they close when collected.
            with contextlib.suppress(RuntimeError):
                connector.close()


def make(settings: Settings, **_: Any) -> AiohttpBackend:
    """The backend (the factory the transport calls after importing this module)."""
    return AiohttpBackend(settings)
