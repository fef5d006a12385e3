"""HTTPTransport: the only place llmkit does network I/O.

One instance per LLM: a lazily created ``httpx.Client`` and ``httpx.AsyncClient`` (keep-alive pools), timeouts,
bounded retries with backoff that honours ``Retry-After``, typed errors, and SSE streams that own their connection.

Example:
    >>> from llmkit.transport import HTTPTransport, Request
    >>> transport = HTTPTransport(base_url="http://127.0.0.1:9", max_retries=0, provider="demo")
    >>> transport.close()
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmkit.callbacks import CallbackManager
from llmkit.errors import (
    APIConnectionError,
    APITimeoutError,
    LLMError,
    RateLimitError,
    ResponseParseError,
    StreamError,
)
from llmkit.transport.errors import ErrorHook, status_error
from llmkit.transport.retry import Retrying, RetryPolicy
from llmkit.transport.sse import ServerSentEvent, aiter_sse, iter_sse

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
#: Keep up to 100 idle connections (httpx keeps 20), so bursts of concurrent calls reuse them instead of reconnecting.
DEFAULT_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
TimeoutTypes = float | httpx.Timeout | None
#: Failures that prove the request never reached the server, so replaying it cannot repeat its work.
UNSENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(slots=True)
class Request:
    """What a provider asks the transport to send. ``url`` is absolute or relative to the transport's base URL;
    ``content`` is a pre-serialised body, for services whose exact bytes matter (it wins over ``json``).

    ``replay_safe=False`` marks a request that starts billable or non-idempotent work (a job start): after an
    ambiguous failure (a 5xx, 408 or 409, a timeout or a reset once the request may have reached the server) it is
    never sent again. A 429 or a failure to connect replays any request: the server did not act on it."""

    method: str
    url: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    params: dict[str, Any] | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    replay_safe: bool = True


def as_timeout(value: TimeoutTypes) -> httpx.Timeout:
    """A float means "this many seconds for each phase, at most 10 s to connect"."""
    if value is None:
        return httpx.Timeout(None)
    if isinstance(value, httpx.Timeout):
        return value
    return httpx.Timeout(value, connect=min(float(value), 10.0))


class HTTPTransport:
    """Sends :class:`Request` objects, sync or async, with pooling, timeouts, retries and typed errors.

    Args:
        base_url: prefix of relative request URLs.
        headers: headers sent with every request (per-request headers override them).
        timeout: seconds per phase, or an ``httpx.Timeout``; per-call ``timeout=`` overrides it.
        total_timeout: a bound on the whole call, retries and waits included (None: no bound).
        max_retries: retries after the first attempt (per-call ``max_retries=`` overrides it).
        provider: the name errors carry.
        error_hook: the provider's own reading of error bodies.
        callback_manager: receives ``on_retry`` for each retry.
        http_client / async_http_client: bring your own httpx clients (proxies, custom TLS; you close them).
        http_transport / async_http_transport: bring your own httpx transports (``httpx.MockTransport``,
            record/replay, a proxy transport) under llmkit's pools.
        follow_redirects: follow 3xx answers (for fetching media; API calls never should).
    """

    def __init__(
        self,
        *,
        base_url: str = "",
        headers: dict[str, str] | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        total_timeout: float | None = None,
        max_retries: int = 2,
        provider: str = "http",
        error_hook: ErrorHook | None = None,
        callback_manager: CallbackManager | None = None,
        retry_policy: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        http_transport: httpx.BaseTransport | None = None,
        async_http_transport: httpx.AsyncBaseTransport | None = None,
        follow_redirects: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = as_timeout(timeout)
        self.total_timeout = total_timeout
        self.max_retries = max_retries
        self.provider = provider
        self.error_hook = error_hook
        self.callback_manager = callback_manager
        self.retry_policy = retry_policy or RetryPolicy()
        self._client = http_client
        self._user_aclient = async_http_client
        self._http_transport = http_transport
        self._async_http_transport = async_http_transport
        self._owns_client = http_client is None
        # One async pool per event loop, kept while the loop lives: a thread with its own loop reuses its pool.
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._follow_redirects = follow_redirects
        self._lock = threading.Lock()

    # -- clients ------------------------------------------------------------------------------------------------------
    # Clients carry no base URL and no headers: requests are made absolute and get their headers in _build, so a
    # client (or transport) the user brings works exactly like ours.

    @property
    def client(self) -> httpx.Client:
        """The sync client, created on first use."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        timeout=self.timeout,
                        limits=DEFAULT_LIMITS,
                        transport=self._http_transport,
                        follow_redirects=self._follow_redirects,
                    )
                client = self._client
        return client

    @property
    def aclient(self) -> httpx.AsyncClient:
        """The async client: the user's, or one per running event loop, created on first use there."""
        if self._user_aclient is not None:
            return self._user_aclient
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                timeout=self.timeout,
                limits=DEFAULT_LIMITS,
                transport=self._async_http_transport,
                follow_redirects=self._follow_redirects,
            )
            self._aclients[loop] = client
        return client

    def close(self) -> None:
        """Close the pools this transport owns. Safe to call twice. (An async pool can only be closed from its own
        event loop: :meth:`aclose` there; pools of loops that are gone are dropped.)"""
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            client.close()

    async def aclose(self) -> None:
        """Close the sync pool and this event loop's async pool."""
        aclient = self._aclients.pop(asyncio.get_running_loop(), None)
        if aclient is not None:
            await aclient.aclose()
        self.close()

    # -- requests -----------------------------------------------------------------------------------------------------

    def _build(
        self, client: httpx.Client | httpx.AsyncClient, request: Request, timeout: TimeoutTypes, deadline: float | None
    ) -> httpx.Request:
        effective = self.timeout if timeout is None else as_timeout(timeout)
        if deadline is not None:
            remaining = max(deadline - time.monotonic(), 0.001)
            effective = httpx.Timeout(
                connect=min(effective.connect or remaining, remaining),
                read=min(effective.read or remaining, remaining),
                write=min(effective.write or remaining, remaining),
                pool=min(effective.pool or remaining, remaining),
            )
        url = self._absolute(request.url)
        headers = self.headers if request.headers is None else {**self.headers, **request.headers}
        return client.build_request(
            request.method,
            url,
            json=request.json if request.content is None else None,
            content=request.content,
            headers=headers,
            params=request.params,
            timeout=effective,
            extensions=request.extensions or None,
        )

    def _absolute(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else self.base_url + url

    def _transport_error(self, exc: Exception, url: str) -> LLMError:
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(
                f"{self.provider}: request to {url} timed out ({type(exc).__name__})", provider=self.provider
            )
        return APIConnectionError(
            f"{self.provider}: could not reach {url}: {type(exc).__name__}: {exc}", provider=self.provider
        )

    def _deadline(self) -> float | None:
        return None if self.total_timeout is None else time.monotonic() + self.total_timeout

    def _retrying(self, request: Request, max_retries: int | None, deadline: float | None) -> Retrying:
        url = self._absolute(request.url)

        def classify(exc: Exception) -> tuple[LLMError, bool] | None:
            if isinstance(exc, httpx.HTTPError | OSError):  # OSError: what a user's transport may raise (TLS)
                return self._transport_error(exc, url), request.replay_safe or isinstance(exc, UNSENT_ERRORS)
            if isinstance(exc, LLMError):  # an error status, read by status_error
                return exc, request.replay_safe or isinstance(exc, RateLimitError)
            return None

        retries = self.max_retries if max_retries is None else max_retries
        return Retrying(self.retry_policy, retries, classify, self.callback_manager, deadline)

    def _status_error(self, response: httpx.Response, content: bytes) -> LLMError:
        return status_error(response.status_code, content, response.headers, self.provider, self.error_hook)

    def send(
        self, request: Request, *, stream: bool = False, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> httpx.Response:
        """Send with retries; a 2xx response comes back (open, when ``stream``), anything else raises."""
        client = self.client
        deadline = self._deadline()

        def attempt() -> httpx.Response:
            response = client.send(self._build(client, request, timeout, deadline), stream=stream)
            if response.status_code < 400:
                return response
            content = response.read()
            response.close()
            raise self._status_error(response, content)

        return self._retrying(request, max_retries, deadline).call(attempt)

    async def asend(
        self, request: Request, *, stream: bool = False, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> httpx.Response:
        """Async :meth:`send`."""
        client = self.aclient
        deadline = self._deadline()

        async def attempt() -> httpx.Response:
            response = await client.send(self._build(client, request, timeout, deadline), stream=stream)
            if response.status_code < 400:
                return response
            content = await response.aread()
            await response.aclose()
            raise self._status_error(response, content)

        return await self._retrying(request, max_retries, deadline).acall(attempt)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError as exc:
            excerpt = response.content[:200].decode("utf-8", errors="replace")
            raise ResponseParseError(
                f"{self.provider} answered HTTP {response.status_code} with a body that is not JSON: {excerpt!r}",
                body=excerpt,
                provider=self.provider,
            ) from exc

    def request_json(self, request: Request, *, timeout: TimeoutTypes = None, max_retries: int | None = None) -> Any:
        """Send and parse the JSON answer."""
        response = self.send(request, timeout=timeout, max_retries=max_retries)
        return self._json(response)

    async def arequest_json(
        self, request: Request, *, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> Any:
        """Async :meth:`request_json`."""
        response = await self.asend(request, timeout=timeout, max_retries=max_retries)
        return self._json(response)

    # -- streams ------------------------------------------------------------------------------------------------------

    def _broken(self, exc: httpx.HTTPError) -> StreamError:
        return StreamError(f"{self.provider}: the stream broke: {type(exc).__name__}: {exc}", provider=self.provider)

    def lines(self, response: httpx.Response) -> Generator[str, None, None]:
        """The lines (``\\n`` or ``\\r\\n``) of a response opened with ``send(..., stream=True)``; a broken stream
        raises :class:`StreamError`; closing the generator closes the response."""
        try:
            yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise self._broken(exc) from exc
        finally:
            response.close()

    async def alines(self, response: httpx.Response) -> AsyncGenerator[str, None]:
        """Async :meth:`lines`."""
        try:
            async for line in response.aiter_lines():
                yield line
        except httpx.HTTPError as exc:
            raise self._broken(exc) from exc
        finally:
            await response.aclose()

    def stream_lines(
        self, request: Request, *, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> Generator[str, None, None]:
        """Send, then the lines of the streamed answer. Retries happen only before the first byte is yielded."""
        response = self.send(request, stream=True, timeout=timeout, max_retries=max_retries)
        yield from self.lines(response)

    async def astream_lines(
        self, request: Request, *, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> AsyncGenerator[str, None]:
        """Async :meth:`stream_lines`; cancelling or closing it closes the connection."""
        response = await self.asend(request, stream=True, timeout=timeout, max_retries=max_retries)
        lines = self.alines(response)
        try:
            async for line in lines:
                yield line
        finally:
            await lines.aclose()

    def stream_events(
        self, request: Request, *, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> Iterator[ServerSentEvent]:
        """Server-sent events of a streamed answer (see :meth:`stream_lines`)."""
        response = self.send(request, stream=True, timeout=timeout, max_retries=max_retries)
        lines = self.lines(response)
        try:
            yield from iter_sse(lines)
        finally:
            lines.close()

    async def astream_events(
        self, request: Request, *, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        """Async :meth:`stream_events`."""
        response = await self.asend(request, stream=True, timeout=timeout, max_retries=max_retries)
        lines = self.alines(response)
        try:
            async for event in aiter_sse(lines):
                yield event
        finally:
            await lines.aclose()
