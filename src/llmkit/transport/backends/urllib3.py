"""The default sync backend: urllib3's pools (about half httpx's cost per call).

Requests to a host without a proxy go straight to that host's ``HTTPConnectionPool`` (looked up once per origin);
proxied ones through a ``ProxyManager``. Bodies are read with ``read1``, so a stream's events come as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProxyError,
    TimeoutError,
)

from llmkit.transport.backends.base import (
    MAX_KEEPALIVE,
    NetworkError,
    Outgoing,
    Settings,
    SyncBackend,
    SyncResponse,
    Timeouts,
    split_origin,
)
from llmkit.transport.proxies import ProxyRoutes
from llmkit.transport.tls import verified_context

_CHUNK = 2**16
#: For fetching media: follow up to 10 redirects (urllib3 drops the Authorization header across hosts), retry nothing.
_REDIRECTS = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=10, raise_on_status=False)


def network_error(exc: HTTPError) -> NetworkError:
    """urllib3's exception, classified."""
    if isinstance(exc, MaxRetryError) and isinstance(exc.reason, HTTPError):  # only when following redirects
        exc = exc.reason
    unsent = isinstance(exc, NewConnectionError | ConnectTimeoutError | ProxyError)
    timeout = isinstance(exc, TimeoutError) and not isinstance(exc, NewConnectionError)
    return NetworkError(exc, timeout=timeout, unsent=unsent)


class Urllib3Response(SyncResponse):
    __slots__ = ("_raw",)

    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str, read_timeout: float | None) -> None:
        super().__init__(raw.status, raw.headers, url, read_timeout)
        self._raw = raw

    def iter_bytes(self) -> Iterator[bytes]:
        raw = self._raw
        read1 = raw.read1
        # Without a content encoding nothing is buffered past the declared length: stop there, without another read.
        sized = "content-encoding" not in raw.headers and raw.length_remaining is not None
        try:
            chunk = read1(_CHUNK)
            while chunk:
                yield chunk
                if sized and raw.length_remaining == 0:
                    return
                chunk = read1(_CHUNK)
        except HTTPError as exc:
            raise network_error(exc) from exc

    def close(self) -> None:
        raw = self._raw
        if raw.closed and raw.connection is None:  # read whole: already back in the pool
            return
        raw.close()  # unread data: the connection cannot be reused
        raw.release_conn()


class Urllib3Backend(SyncBackend):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._manager = urllib3.PoolManager(
            num_pools=64,
            maxsize=MAX_KEEPALIVE,
            block=False,
            retries=False,
            timeout=self._timeout(settings.timeouts),
            ssl_context=verified_context("urllib3"),
        )
        self._proxies = ProxyRoutes.from_env() or None
        self._proxy_managers: dict[str, urllib3.ProxyManager] = {}
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}
        self._default = (settings.timeouts, self._timeout(settings.timeouts))
        self._retries: urllib3.Retry | bool = _REDIRECTS if settings.follow_redirects else False

    @property
    def native(self) -> urllib3.PoolManager:
        return self._manager

    @staticmethod
    def _timeout(timeouts: Timeouts) -> urllib3.Timeout:
        # urllib3 has no write timeout (a send blocks at most as long as a read may) and no pool wait (never blocks).
        return urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)

    def send(self, request: Outgoing) -> SyncResponse:
        timeouts = request.timeouts
        timeout = self._default[1] if timeouts is self._default[0] else self._timeout(timeouts)
        try:
            if self._proxies is not None and (proxy := self._proxies.for_url(request.url)):
                raw = self._proxy_manager(proxy).urlopen(
                    request.method, request.url, body=request.body, headers=request.headers,
                    retries=self._retries, redirect=self._retries is not False, timeout=timeout,
                    preload_content=False,
                )  # fmt: skip
            elif self._retries is not False:  # redirects may go to other hosts: the manager follows them
                raw = self._manager.urlopen(
                    request.method, request.url, body=request.body, headers=request.headers,
                    retries=self._retries, redirect=True, timeout=timeout, preload_content=False,
                )  # fmt: skip
            else:
                origin, target = split_origin(request.url)
                pool = self._pools.get(origin)
                if pool is None or pool.pool is None:  # new, or closed by the manager (it keeps 64 hosts)
                    pool = self._pools[origin] = self._manager.connection_from_url(origin)
                    if len(self._pools) > 64:
                        del self._pools[next(iter(self._pools))]
                raw = pool.urlopen(
                    request.method, target, body=request.body, headers=request.headers, retries=False,
                    redirect=False, assert_same_host=False, timeout=timeout, preload_content=False,
                )  # fmt: skip
        except HTTPError as exc:
            raise network_error(exc) from exc
        return Urllib3Response(raw, request.url, timeouts.read)

    def _proxy_manager(self, proxy: str) -> urllib3.ProxyManager:
        manager = self._proxy_managers.get(proxy)
        if manager is None:
            manager = self._proxy_managers[proxy] = urllib3.ProxyManager(
                proxy,
                num_pools=64,
                maxsize=MAX_KEEPALIVE,
                block=False,
                retries=False,
                ssl_context=verified_context("urllib3"),
            )
        return manager

    def close(self) -> None:
        self._pools.clear()
        self._manager.clear()
        for manager in self._proxy_managers.values():
            manager.clear()
        self._proxy_managers.clear()


def make(settings: Settings, **_: Any) -> Urllib3Backend:
    """The backend (the factory the transport calls after importing this module)."""
    return Urllib3Backend(settings)
