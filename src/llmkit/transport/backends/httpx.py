"""The httpx backend: the plug point. Used whenever the user brings an httpx client or transport (proxies, custom
TLS, ``httpx.MockTransport``, record/replay), when ``LLMKIT_HTTP_BACKEND=httpx``, and when urllib3 or aiohttp are
missing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx

from llmkit.transport.backends.base import (
    MAX_CONNECTIONS,
    MAX_KEEPALIVE,
    AsyncBackend,
    AsyncResponse,
    NetworkError,
    Outgoing,
    Settings,
    SyncBackend,
    SyncResponse,
    Timeouts,
)
from llmkit.transport.tls import verified_context

LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE)
#: Failures that prove the request never reached the server.
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: What httpx and users' transports raise (OSError: a transport's own TLS or socket failure).
ERRORS = (httpx.HTTPError, OSError)


def network_error(exc: Exception) -> NetworkError:
    """httpx's exception (or a user transport's OSError), classified."""
    return NetworkError(exc, timeout=isinstance(exc, httpx.TimeoutException), unsent=isinstance(exc, _UNSENT))


def _timeout(timeouts: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool)


def _build(client: httpx.Client | httpx.AsyncClient, request: Outgoing) -> httpx.Request:
    return client.build_request(
        request.method,
        request.url,
        content=request.body,
        headers=request.headers,
        timeout=_timeout(request.timeouts),
        extensions=request.extensions or None,
    )


class HttpxResponse(SyncResponse):
    __slots__ = ("raw",)

    def __init__(self, raw: httpx.Response, url: str, read_timeout: float | None) -> None:
        super().__init__(raw.status_code, raw.headers, url, read_timeout)
        self.raw = raw

    def iter_bytes(self) -> Iterator[bytes]:
        try:
            yield from self.raw.iter_bytes()
        except ERRORS as exc:
            raise network_error(exc) from exc

    def close(self) -> None:
        self.raw.close()


class HttpxAsyncResponse(AsyncResponse):
    __slots__ = ("raw",)

    def __init__(self, raw: httpx.Response, url: str, read_timeout: float | None) -> None:
        super().__init__(raw.status_code, raw.headers, url, read_timeout)
        self.raw = raw

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.raw.aiter_bytes():
                yield chunk
        except ERRORS as exc:
            raise network_error(exc) from exc

    async def aclose(self) -> None:
        await self.raw.aclose()


def _client_options(settings: Settings) -> dict[str, Any]:
    """What llmkit sets on an httpx client it creates, sync or async."""
    return {
        "timeout": _timeout(settings.timeouts),
        "limits": LIMITS,
        "verify": verified_context("httpx"),  # shared: httpx would load the certificate store per client
        "follow_redirects": settings.follow_redirects,
    }


class HttpxBackend(SyncBackend):
    def __init__(
        self, settings: Settings, client: httpx.Client | None = None, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._owns = client is None
        self._client = client or httpx.Client(transport=transport, **_client_options(settings))

    @property
    def native(self) -> httpx.Client:
        return self._client

    def send(self, request: Outgoing) -> SyncResponse:
        try:
            raw = self._client.send(_build(self._client, request), stream=True)
        except ERRORS as exc:
            raise network_error(exc) from exc
        return HttpxResponse(raw, request.url, request.timeouts.read)

    def close(self) -> None:
        if self._owns:
            self._client.close()


class HttpxAsyncBackend(AsyncBackend):
    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._owns = client is None
        self._client = client or httpx.AsyncClient(transport=transport, **_client_options(settings))

    @property
    def native(self) -> httpx.AsyncClient:
        return self._client

    async def send(self, request: Outgoing) -> AsyncResponse:
        try:
            raw = await self._client.send(_build(self._client, request), stream=True)
        except ERRORS as exc:
            raise network_error(exc) from exc
        return HttpxAsyncResponse(raw, request.url, request.timeouts.read)

    def _closer(self) -> Callable[[], Awaitable[object]]:
        return self._client.aclose if self._owns else _nothing


async def _nothing() -> None:
    """A user's client is theirs to close."""
