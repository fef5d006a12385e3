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
import os
import re
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmkit.callbacks import CallbackManager, _header_hooks, outgoing_headers
from llmkit.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
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
#: The largest body read for an answer or an error (bytes); a longer answer fails, a longer error is truncated.
DEFAULT_MAX_BODY_BYTES = 32 * 2**20
#: The longest line of a streamed answer (bytes, as characters); a longer one fails instead of filling memory.
MAX_LINE_CHARS = 8 * 2**20
_SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret", re.IGNORECASE)
_LOOPBACK = ("localhost", "127.", "::1", "[::1]")

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


#: Content types that are an answer, not the event stream asked for (an error page, a JSON error).
_NOT_STREAMS = ("application/json", "text/html")


class _LineSplitter:
    """Splits streamed text into lines (``\\n``, ``\\r\\n``), refusing a line longer than :data:`MAX_LINE_CHARS`."""

    __slots__ = ("buffer", "provider")

    def __init__(self, provider: str) -> None:
        self.buffer, self.provider = "", provider

    def feed(self, text: str) -> list[str]:
        buffer = self.buffer + text
        if "\n" not in buffer:
            self.buffer = self._capped(buffer)
            return []
        *lines, rest = buffer.split("\n")
        self.buffer = self._capped(rest)
        return [line[:-1] if line.endswith("\r") else line for line in lines]

    def flush(self) -> list[str]:
        rest, self.buffer = self.buffer, ""
        return [rest.removesuffix("\r")] if rest else []

    def _capped(self, buffer: str) -> str:
        if len(buffer) > MAX_LINE_CHARS:
            raise StreamError(
                f"{self.provider}: a streamed line is longer than {MAX_LINE_CHARS} characters", provider=self.provider
            )
        return buffer


@dataclass(frozen=True, slots=True)
class _Body:
    content: bytes
    truncated: bool = False


def check_url(url: str, provider: str = "llmkit") -> str:
    """A base URL llmkit can send to, or a :class:`ConfigurationError` naming what is wrong with it.

    Example:
        >>> check_url("localhost:8000/v1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        llmkit.errors.ConfigurationError: llmkit: the URL 'localhost:8000/v1' has no scheme: write http://localhost...
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ConfigurationError(f"{provider}: the URL {url!r} is not valid: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"{provider}: the URL {url!r} has no scheme: write http://{url} or https://..."
            if "://" not in url
            else f"{provider}: the URL {url!r} must start with http:// or https://"
        )
    if not parsed.host:
        raise ConfigurationError(f"{provider}: the URL {url!r} has no host")
    return url


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
        follow_redirects: follow 3xx answers (for fetching media; API calls never do: a redirect is an error).
        max_body_bytes: the largest answer or error body read (32 MB); longer errors are truncated, and say so.
        allow_insecure_http: send secrets (``Authorization``, API keys) over plain http to a host that is not
            loopback; refused otherwise (also allowed by ``LLMKIT_ALLOW_INSECURE_HTTP=1``).
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
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        allow_insecure_http: bool = False,
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
        self.max_body_bytes = max_body_bytes
        self.allow_insecure_http = allow_insecure_http or os.environ.get("LLMKIT_ALLOW_INSECURE_HTTP") == "1"
        self._lock = threading.Lock()
        # The secrets this transport sends: redacted from every error it raises (a server may echo the key).
        self._secrets = [
            value.split(" ", 1)[-1] for name, value in self.headers.items() if _SECRET_HEADER.search(name) and value
        ]
        if self.base_url:
            check_url(self.base_url, self.provider)
            self._refuse_cleartext_secrets(self.base_url, self.headers)

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
        if _header_hooks:  # tracing: W3C traceparent of the current call
            headers = dict(headers)
            outgoing_headers(headers)
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
        if url.startswith(("http://", "https://")):
            if url.startswith("http://"):  # a foreign absolute URL must not carry the key in clear either
                self._refuse_cleartext_secrets(url, self.headers)
            return url
        return self.base_url + url

    def _refuse_cleartext_secrets(self, url: str, headers: dict[str, str]) -> None:
        if self.allow_insecure_http or not url.startswith("http://"):
            return
        host = httpx.URL(url).host
        if host.startswith(_LOOPBACK) or not any(_SECRET_HEADER.search(name) for name in headers):
            return
        raise ConfigurationError(
            f"{self.provider}: refusing to send credentials in clear text to {host} over http://. Use https://, "
            "or opt in with allow_insecure_http=True (or LLMKIT_ALLOW_INSECURE_HTTP=1) on a network you trust"
        )

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

    def _status_error(self, response: httpx.Response, body: _Body) -> LLMError:
        if response.status_code < 400:  # 3xx: never followed, the key could go to another host
            location = response.headers.get("location", "(no Location)")
            return APIStatusError(
                f"{self.provider}: {response.request.url.host} answered HTTP {response.status_code}, a redirect to "
                f"{location}; set the base URL to where the API really is",
                status_code=response.status_code,
                provider=self.provider,
                body=body.content[:2000].decode("utf-8", errors="replace"),
            )
        content = self._redact_bytes(body.content)
        error = status_error(response.status_code, content, response.headers, self.provider, self.error_hook)
        if body.truncated:
            error.args = (f"{error} [error body truncated at {len(body.content)} bytes]",)
        return error

    def _redact_bytes(self, content: bytes) -> bytes:
        for secret in self._secrets:
            if len(secret) >= 8:  # shorter "secrets" would redact ordinary words
                content = content.replace(secret.encode(), b"[redacted]")
        return content

    def _body_deadline(self, built: httpx.Request) -> float | None:
        """A body must arrive whole within the read timeout (and the call's deadline): a server trickling bytes
        forever cannot hold a call open."""
        read = built.extensions.get("timeout", {}).get("read")
        return None if read is None else time.monotonic() + read

    def _too_long(self, built: httpx.Request) -> APITimeoutError:
        return APITimeoutError(
            f"{self.provider}: the answer from {built.url.host} did not arrive whole within the read timeout",
            provider=self.provider,
        )

    def _take(self, body: bytearray, chunk: bytes, truncate: bool) -> bool:
        """Add ``chunk``; False (stop reading) once a truncated body is full; an answer over the cap is an error."""
        body += chunk
        if len(body) <= self.max_body_bytes:
            return True
        if truncate:
            del body[self.max_body_bytes :]
            return False
        raise ResponseParseError(
            f"{self.provider}: the answer is larger than max_body_bytes={self.max_body_bytes}; raise the limit if "
            "it is expected",
            provider=self.provider,
        )

    def _read(
        self, response: httpx.Response, chunks: Iterator[bytes], built: httpx.Request, truncate: bool = False
    ) -> _Body:
        body, deadline, whole = bytearray(), self._body_deadline(built), True
        for chunk in chunks:
            if not self._take(body, chunk, truncate):
                whole = False
                break
            if deadline is not None and time.monotonic() > deadline:
                response.close()
                raise self._too_long(built)
        response._content = bytes(body)  # httpx has no public way to keep a body read with our caps
        return _Body(response._content, truncated=not whole)

    async def _aread(
        self, response: httpx.Response, chunks: AsyncIterator[bytes], built: httpx.Request, truncate: bool = False
    ) -> _Body:
        body, deadline, whole = bytearray(), self._body_deadline(built), True
        async for chunk in chunks:
            if not self._take(body, chunk, truncate):
                whole = False
                break
            if deadline is not None and time.monotonic() > deadline:
                await response.aclose()
                raise self._too_long(built)
        response._content = bytes(body)  # httpx has no public way to keep a body read with our caps
        return _Body(response._content, truncated=not whole)

    def send(
        self, request: Request, *, stream: bool = False, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> httpx.Response:
        """Send with retries; a 2xx response comes back (open, when ``stream``), anything else raises."""
        client = self.client
        deadline = self._deadline()

        def attempt() -> httpx.Response:
            built = self._build(client, request, timeout, deadline)
            response = client.send(built, stream=True)
            if response.status_code < 300:
                if not stream:
                    self._read(response, response.iter_bytes(), built)
                return response
            body = self._read(response, response.iter_bytes(), built, truncate=True)
            response.close()
            raise self._status_error(response, body)

        return self._retrying(request, max_retries, deadline).call(attempt)

    async def asend(
        self, request: Request, *, stream: bool = False, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> httpx.Response:
        """Async :meth:`send`."""
        client = self.aclient
        deadline = self._deadline()

        async def attempt() -> httpx.Response:
            built = self._build(client, request, timeout, deadline)
            response = await client.send(built, stream=True)
            if response.status_code < 300:
                if not stream:
                    await self._aread(response, response.aiter_bytes(), built)
                return response
            body = await self._aread(response, response.aiter_bytes(), built, truncate=True)
            await response.aclose()
            raise self._status_error(response, body)

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

    def _idle_seconds(self, response: httpx.Response) -> float | None:
        read: float | None = response.request.extensions.get("timeout", {}).get("read")
        return read

    def _idle(self, seconds: float) -> APITimeoutError:
        return APITimeoutError(
            f"{self.provider}: the stream sent no event for {seconds:g} s (only keep-alive comments)",
            provider=self.provider,
        )

    def lines(self, response: httpx.Response) -> Generator[str, None, None]:
        """The lines (``\\n`` or ``\\r\\n``) of a response opened with ``send(..., stream=True)``; a broken stream
        raises :class:`StreamError`, a line over :data:`MAX_LINE_CHARS` too, and only keep-alive comments for longer
        than the read timeout :class:`~llmkit.errors.APITimeoutError`; closing the generator closes the response."""
        splitter, idle = _LineSplitter(self.provider), self._idle_seconds(response)
        progress = time.monotonic()
        try:
            for text in response.iter_text():
                for line in splitter.feed(text):
                    if line and not line.startswith(":"):
                        progress = time.monotonic()
                    elif idle is not None and time.monotonic() - progress > idle:
                        raise self._idle(idle)
                    yield line
            yield from splitter.flush()
        except httpx.HTTPError as exc:
            raise self._broken(exc) from exc
        finally:
            response.close()

    async def alines(self, response: httpx.Response) -> AsyncGenerator[str, None]:
        """Async :meth:`lines`."""
        splitter, idle = _LineSplitter(self.provider), self._idle_seconds(response)
        progress = time.monotonic()
        try:
            async for text in response.aiter_text():
                for line in splitter.feed(text):
                    if line and not line.startswith(":"):
                        progress = time.monotonic()
                    elif idle is not None and time.monotonic() - progress > idle:
                        raise self._idle(idle)
                    yield line
            for line in splitter.flush():
                yield line
        except httpx.HTTPError as exc:
            raise self._broken(exc) from exc
        finally:
            await response.aclose()

    def _not_a_stream(self, response: httpx.Response, body: bytes) -> ResponseParseError:
        excerpt = body[:2000].decode("utf-8", errors="replace")
        return ResponseParseError(
            f"{self.provider}: asked {response.request.url.host} for an event stream, got "
            f"{response.headers.get('content-type')} instead: {excerpt[:300]!r}",
            body=excerpt,
            provider=self.provider,
        )

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
        """Server-sent events of a streamed answer (see :meth:`stream_lines`). A JSON or HTML answer instead of a
        stream is a :class:`~llmkit.errors.ResponseParseError` carrying the body."""
        response = self.send(request, stream=True, timeout=timeout, max_retries=max_retries)
        if response.headers.get("content-type", "").startswith(_NOT_STREAMS):
            body = self._read(response, response.iter_bytes(), response.request, truncate=True)
            response.close()
            raise self._not_a_stream(response, body.content)
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
        if response.headers.get("content-type", "").startswith(_NOT_STREAMS):
            body = await self._aread(response, response.aiter_bytes(), response.request, truncate=True)
            await response.aclose()
            raise self._not_a_stream(response, body.content)
        lines = self.alines(response)
        try:
            async for event in aiter_sse(lines):
                yield event
        finally:
            await lines.aclose()
