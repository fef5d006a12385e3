"""The default async backend: aiohttp's ``ClientSession`` (several times httpx's throughput on one event loop).

A session belongs to the event loop it was made on; the transport keeps one per loop.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from llmkit.transport.proxies import ProxyRoutes
from llmkit.transport.tls import verified_context


def network_error(exc: BaseException) -> NetworkError:
    """aiohttp's exception (or the OS's, or a timeout), classified."""
    unsent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return NetworkError(exc, timeout=isinstance(exc, asyncio.TimeoutError), unsent=unsent)


class AiohttpResponse(AsyncResponse):
    __slots__ = ("_raw",)

    def __init__(self, raw: aiohttp.ClientResponse, url: str, read_timeout: float | None) -> None:
        super().__init__(raw.status, raw.headers, url, read_timeout)
        self._raw = raw

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        readany = self._raw.content.readany
        try:
            chunk = await readany()
            while chunk:
                yield chunk
                chunk = await readany()
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


class AiohttpBackend(AsyncBackend):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=verified_context("aiohttp")),
            timeout=aiohttp.ClientTimeout(total=None),
            # no Content-Type guessed for bytes (httpx sends none either); proxies are ours, from the environment
            skip_auto_headers=("Content-Type",),
            trust_env=False,
        )
        self._proxies = ProxyRoutes.from_env() or None
        self._default = (settings.timeouts, self._timeout(settings.timeouts))

    @property
    def native(self) -> aiohttp.ClientSession:
        return self._session

    @staticmethod
    def _timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
        # sock_connect: making a new connection; sock_read: each wait for bytes, headers included. No bound on the
        # wait for a free connection (aiohttp would arm a timer per request for it, even when one is idle; the pool
        # holds 1000) and no write timeout (aiohttp has none).
        return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=timeouts.connect, sock_read=timeouts.read)

    async def send(self, request: Outgoing) -> AsyncResponse:
        timeouts = request.timeouts
        timeout = self._default[1] if timeouts is self._default[0] else self._timeout(timeouts)
        try:
            raw = await self._session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=self._settings.follow_redirects,
                proxy=None if self._proxies is None else self._proxies.for_url(request.url),
            )
        except (aiohttp.ClientError, OSError) as exc:
            raise network_error(exc) from exc
        return AiohttpResponse(raw, request.url, timeouts.read)

    def _closer(self) -> Callable[[], Awaitable[object]]:
        return self._session.close

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
