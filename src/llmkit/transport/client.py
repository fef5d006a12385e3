"""HTTPTransport: the only place llmkit does network I/O.

One instance per LLM: lazily created keep-alive pools (urllib3 for blocking calls, aiohttp on the event loop, httpx
when the user brings an httpx client or transport: see :mod:`llmkit.transport.backends`), timeouts, bounded retries
with backoff that honours ``Retry-After``, typed errors, and SSE streams that own their connection. All of it is
written here once, over the backend interface.

Example:
    >>> from llmkit.transport import HTTPTransport, Request
    >>> transport = HTTPTransport(base_url="http://127.0.0.1:9", max_retries=0, provider="demo")
    >>> transport.close()
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import os
import re
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Generator, Iterator
from dataclasses import dataclass
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
from llmkit.transport.backends import async_backend, sync_backend, wants_httpx
from llmkit.transport.backends.base import (
    AsyncBackend,
    AsyncResponse,
    NetworkError,
    Outgoing,
    Response,
    Settings,
    SyncBackend,
    SyncResponse,
    Timeouts,
    with_query,
)
from llmkit.transport.codec import decode_json, encode_json
from llmkit.transport.errors import ErrorHook, status_error
from llmkit.transport.retry import Retrying, RetryPolicy
from llmkit.transport.sse import ServerSentEvent, aiter_sse, iter_sse

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
TimeoutTypes = float | httpx.Timeout | None
#: The largest body read for an answer or an error (bytes); a longer answer fails, a longer error is truncated.
DEFAULT_MAX_BODY_BYTES = 32 * 2**20
#: The longest line of a streamed answer (bytes, as characters); a longer one fails instead of filling memory.
MAX_LINE_CHARS = 8 * 2**20
_SECRET_HEADER = re.compile(r"authorization|api[-_]?key|token|secret", re.IGNORECASE)
_LOOPBACK = ("localhost", "127.", "::1", "[::1]")


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
    extensions: dict[str, Any] | None = None
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
        if "\r" in buffer:
            return [line[:-1] if line.endswith("\r") else line for line in lines]
        return lines

    def flush(self) -> list[str]:
        rest, self.buffer = self.buffer, ""
        return [rest.removesuffix("\r")] if rest else []

    def _capped(self, buffer: str) -> str:
        if len(buffer) > MAX_LINE_CHARS:
            raise StreamError(
                f"{self.provider}: a streamed line is longer than {MAX_LINE_CHARS} characters", provider=self.provider
            )
        return buffer


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


def _forgetter(transport: HTTPTransport, loop: asyncio.AbstractEventLoop, backend: AsyncBackend) -> Callable[[], None]:
    """Forgets ``loop``'s pool once it closed; holds neither the transport nor the pool, so both can be collected."""
    transport_ref, backend_ref = weakref.ref(transport), weakref.ref(backend)

    def forget() -> None:
        owner, closed = transport_ref(), backend_ref()
        if owner is not None and closed is not None and owner._abackends.get(loop) is closed:  # not a newer one
            del owner._abackends[loop]
            owner._last_abackend = None

    return forget


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
        http_backend: ``"httpx"`` sends everything through httpx; by default (or ``$LLMKIT_HTTP_BACKEND``) blocking
            calls go through urllib3 and async ones through aiohttp, unless an httpx client or transport is given.
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
        http_backend: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = as_timeout(timeout)
        self._timeouts = Timeouts.of(self.timeout)
        self.total_timeout = total_timeout
        self.max_retries = max_retries
        self.provider = provider
        self.error_hook = error_hook
        self.callback_manager = callback_manager
        self.retry_policy = retry_policy or RetryPolicy()
        self._settings = Settings(self._timeouts, follow_redirects)
        self._httpx_only = wants_httpx(http_backend)
        self._http_client = http_client
        self._http_transport = http_transport
        self._async_http_client = async_http_client
        self._async_http_transport = async_http_transport
        self._backend: SyncBackend | None = None
        # A user's async client is theirs, used from whatever loop they use it on; ours are one per event loop, kept
        # while the loop lives (a thread with its own loop reuses its pool) and closed when it shuts down.
        self._user_abackend: AsyncBackend | None = None
        self._abackends: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncBackend] = (
            weakref.WeakKeyDictionary()
        )
        self._last_abackend: tuple[weakref.ref[asyncio.AbstractEventLoop], AsyncBackend] | None = None
        self.max_body_bytes = max_body_bytes
        self.allow_insecure_http = allow_insecure_http or os.environ.get("LLMKIT_ALLOW_INSECURE_HTTP") == "1"
        self._lock = threading.Lock()
        # The secrets this transport sends: redacted from every error it raises (a server may echo the key).
        self._secrets = [
            value.split(" ", 1)[-1] for name, value in self.headers.items() if _SECRET_HEADER.search(name) and value
        ]
        # Headers of a JSON request without headers of its own: built once (see _headers).
        self._json_headers = self._with_json_type(self.headers)
        if self.base_url:
            check_url(self.base_url, self.provider)
            self._refuse_cleartext_secrets(self.base_url, self.headers)

    # -- pools --------------------------------------------------------------------------------------------------------
    # Pools carry no base URL and no headers: requests are made absolute and get their headers in _outgoing, so a
    # client (or transport) the user brings works exactly like ours.

    @property
    def backend(self) -> SyncBackend:
        """The blocking pool, created on first use."""
        backend = self._backend
        if backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = sync_backend(
                        self._settings,
                        httpx_only=self._httpx_only,
                        client=self._http_client,
                        transport=self._http_transport,
                    )
                backend = self._backend
        return backend

    @property
    def abackend(self) -> AsyncBackend:
        """The async pool: the user's, or one per running event loop, created on first use there."""
        if self._user_abackend is not None:
            return self._user_abackend
        if self._async_http_client is not None:
            self._user_abackend = async_backend(self._settings, client=self._async_http_client)
            return self._user_abackend
        loop = asyncio.get_running_loop()
        last = self._last_abackend  # the pool of the loop last asked about (a weak dictionary's lookup costs more)
        if last is not None and last[0]() is loop:
            return last[1]
        backend = self._abackends.get(loop)
        if backend is None:
            for other in [other for other in self._abackends if other.is_closed()]:
                self._abackends.pop(other).abandon()  # closed without shutting down its tasks
            backend = async_backend(self._settings, httpx_only=self._httpx_only, transport=self._async_http_transport)
            self._abackends[loop] = backend
            backend.close_with_loop(_forgetter(self, loop, backend))
        self._last_abackend = (weakref.ref(loop), backend)
        return backend

    @property
    def client(self) -> Any:
        """The blocking pool's own client (``urllib3.PoolManager``, or ``httpx.Client``)."""
        return self.backend.native

    @property
    def aclient(self) -> Any:
        """This event loop's pool's own client (``aiohttp.ClientSession``, or ``httpx.AsyncClient``)."""
        return self.abackend.native

    def close(self) -> None:
        """Close the pools this transport owns. Safe to call twice. (An async pool can only be closed from its own
        event loop: :meth:`aclose` there; pools of loops that shut down close with them.)"""
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    async def aclose(self) -> None:
        """Close the sync pool and this event loop's async pool."""
        abackend = self._abackends.pop(asyncio.get_running_loop(), None)
        self._last_abackend = None
        if abackend is not None:
            await abackend.aclose()
        self.close()

    # -- requests -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _with_json_type(headers: dict[str, str]) -> dict[str, str]:
        if any(name.lower() == "content-type" for name in headers):
            return headers
        return {**headers, "Content-Type": "application/json"}

    def _headers(self, request: Request, json_body: bool) -> dict[str, str]:
        """The headers of one outgoing request, built here and nowhere else: the transport's (the key included),
        the request's own over them, and the JSON content type unless one is given."""
        if request.headers is None:
            headers = self._json_headers if json_body else self.headers
        else:  # the request's own over the transport's, names compared as HTTP does (without case)
            own = {name.lower() for name in request.headers}
            headers = {name: value for name, value in self.headers.items() if name.lower() not in own}
            headers.update(request.headers)
            headers = self._with_json_type(headers) if json_body else headers
        if _header_hooks:  # tracing: the W3C traceparent of the current call, on a copy (the base dicts are shared)
            headers = dict(headers)
            outgoing_headers(headers)
        return headers

    def _outgoing(self, request: Request, timeout: TimeoutTypes, deadline: float | None) -> Outgoing:
        timeouts = self._timeouts if timeout is None else Timeouts.of(timeout)
        if deadline is not None:
            timeouts = timeouts.capped(max(deadline - time.monotonic(), 0.001))
        url = self._absolute(request.url)
        if request.params:
            url = with_query(url, request.params)
        body, json_body = request.content, False
        if body is None and request.json is not None:
            body, json_body = encode_json(request.json), True
        return Outgoing(
            request.method, url, self._headers(request, json_body), body, timeouts, request.extensions or None
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

    def _transport_error(self, exc: NetworkError, url: str) -> LLMError:
        if exc.timeout:
            return APITimeoutError(f"{self.provider}: request to {url} timed out ({exc.kind})", provider=self.provider)
        return APIConnectionError(f"{self.provider}: could not reach {url}: {exc}", provider=self.provider)

    def _deadline(self) -> float | None:
        return None if self.total_timeout is None else time.monotonic() + self.total_timeout

    def _retrying(self, request: Request, max_retries: int | None, deadline: float | None) -> Retrying:
        def classify(exc: Exception) -> tuple[LLMError, bool] | None:
            if isinstance(exc, NetworkError):
                # The URL as the caller wrote it (absolute), never the query: it may carry a key.
                return self._transport_error(exc, self._absolute(request.url)), request.replay_safe or exc.unsent
            if isinstance(exc, LLMError):  # an error status, read by status_error
                return exc, request.replay_safe or isinstance(exc, RateLimitError)
            return None

        retries = self.max_retries if max_retries is None else max_retries
        return Retrying(self.retry_policy, retries, classify, self.callback_manager, deadline)

    def _status_error(self, response: Response, whole: bool) -> LLMError:
        """The error an answer with an error status is, its body read (``whole``: not truncated)."""
        if response.status_code < 400:  # 3xx: never followed, the key could go to another host
            location = response.headers.get("location", "(no Location)")
            return APIStatusError(
                f"{self.provider}: {response.host} answered HTTP {response.status_code}, a redirect to "
                f"{location}; set the base URL to where the API really is",
                status_code=response.status_code,
                provider=self.provider,
                body=response.content[:2000].decode("utf-8", errors="replace"),
            )
        content = self._redact_bytes(response.content)
        error = status_error(response.status_code, content, response.headers, self.provider, self.error_hook)
        if not whole:
            error.args = (f"{error} [error body truncated at {len(response.content)} bytes]",)
        return error

    def _redact_bytes(self, content: bytes) -> bytes:
        for secret in self._secrets:
            if len(secret) >= 8:  # shorter "secrets" would redact ordinary words
                content = content.replace(secret.encode(), b"[redacted]")
        return content

    def _too_long(self, response: Response) -> APITimeoutError:
        return APITimeoutError(
            f"{self.provider}: the answer from {response.host} did not arrive whole within the read timeout",
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

    # A body must arrive whole within the read timeout (and the call's deadline): a server trickling bytes forever
    # cannot hold a call open. The first chunk needs no check: it came within one read timeout. The body is left in
    # ``response.content``; the result says whether it is whole (False: truncated, only with ``truncate``).

    def _read(self, response: SyncResponse, truncate: bool = False) -> bool:
        chunks = response.iter_bytes()
        first = next(chunks, b"")
        read = response.read_timeout
        deadline = None if read is None else time.monotonic() + read
        fits = len(first) <= self.max_body_bytes
        second = next(chunks, None) if fits else None
        if fits and second is None:  # the usual answer: one chunk, kept as it is
            response.content = first
            return True
        body, whole = bytearray(), True
        if self._take(body, first, truncate):
            for chunk in chunks if second is None else itertools.chain((second,), chunks):
                if not self._take(body, chunk, truncate):
                    whole = False
                    break
                if deadline is not None and time.monotonic() > deadline:
                    response.close()
                    raise self._too_long(response)
        else:
            whole = False
        response.content = bytes(body)
        return whole

    async def _aread(self, response: AsyncResponse, truncate: bool = False) -> bool:
        arrived = response.arrived()
        if arrived is not None and len(arrived) <= self.max_body_bytes:  # all there: no waiting, no deadline
            response.content = arrived
            return True
        body, whole = bytearray(), True
        if arrived is not None:
            whole = self._take(body, arrived, truncate)  # over the cap: an error, or the truncated error body
            response.content = bytes(body)
            return whole
        read = response.read_timeout
        deadline = None if read is None else time.monotonic() + read
        async for chunk in response.aiter_bytes():
            if not self._take(body, chunk, truncate):
                whole = False
                break
            if deadline is not None and time.monotonic() > deadline:
                await response.aclose()
                raise self._too_long(response)
        response.content = bytes(body)
        return whole

    def send(
        self, request: Request, *, stream: bool = False, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> SyncResponse:
        """Send with retries; a 2xx response comes back (open, when ``stream``: read it with ``iter_bytes()`` or
        :meth:`lines`, then ``close()``), anything else raises."""
        response: SyncResponse = self._send(request, stream, timeout, max_retries, False)
        return response

    def request_json(self, request: Request, *, timeout: TimeoutTypes = None, max_retries: int | None = None) -> Any:
        """Send and parse the JSON answer."""
        return self._send(request, False, timeout, max_retries, True)

    def asend(
        self, request: Request, *, stream: bool = False, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> Coroutine[Any, Any, AsyncResponse]:
        """Async :meth:`send` (read a stream with ``aiter_bytes()`` or :meth:`alines`, then ``aclose()``)."""
        return self._asend(request, stream, timeout, max_retries, False)

    def arequest_json(
        self, request: Request, *, timeout: TimeoutTypes = None, max_retries: int | None = None
    ) -> Coroutine[Any, Any, Any]:
        """Async :meth:`request_json`."""
        return self._asend(request, False, timeout, max_retries, True)

    # The one send loop of each kind, which the methods above return (not await: a call's coroutine is this one).

    def _send(
        self, request: Request, stream: bool, timeout: TimeoutTypes, max_retries: int | None, as_json: bool
    ) -> Any:
        backend = self.backend
        deadline = self._deadline()
        retrying: Retrying | None = None  # made at the first failure: a call that succeeds at once builds none
        attempt = 0
        while True:  # the loop of Retrying.call, inlined: no closure and no driver per call on the hot path
            attempt += 1
            started_ns = time.time_ns()
            try:
                response = backend.send(self._outgoing(request, timeout, deadline))
                if response.status_code < 300:
                    if stream:
                        return response
                    try:
                        self._read(response)
                    finally:
                        response.close()
                    break
                whole = self._read(response, truncate=True)
                response.close()
                raise self._status_error(response, whole)
            except Exception as exc:  # classified by the retry policy; anything else propagates from delay_after
                if retrying is None:
                    retrying = self._retrying(request, max_retries, deadline)
                delay = retrying.delay_after(exc, attempt, started_ns)
            time.sleep(delay)
        return self._json(response) if as_json else response

    async def _asend(
        self, request: Request, stream: bool, timeout: TimeoutTypes, max_retries: int | None, as_json: bool
    ) -> Any:
        backend = self.abackend
        deadline = self._deadline()
        retrying: Retrying | None = None
        attempt = 0
        while True:  # as in _send: Retrying.acall's loop, inlined
            attempt += 1
            started_ns = time.time_ns()
            try:
                response = await backend.send(self._outgoing(request, timeout, deadline))
                if response.status_code < 300:
                    if stream:
                        return response
                    try:
                        await self._aread(response)
                    finally:
                        await response.aclose()
                    break
                whole = await self._aread(response, truncate=True)
                await response.aclose()
                raise self._status_error(response, whole)
            except Exception as exc:
                if retrying is None:
                    retrying = self._retrying(request, max_retries, deadline)
                delay = retrying.delay_after(exc, attempt, started_ns)
            await asyncio.sleep(delay)
        return self._json(response) if as_json else response

    def _json(self, response: Response) -> Any:
        try:
            return decode_json(response.content)
        except ValueError as exc:
            excerpt = response.content[:200].decode("utf-8", errors="replace")
            raise ResponseParseError(
                f"{self.provider} answered HTTP {response.status_code} with a body that is not JSON: {excerpt!r}",
                body=excerpt,
                provider=self.provider,
            ) from exc

    # -- streams ------------------------------------------------------------------------------------------------------

    def _broken(self, exc: NetworkError, response: Response) -> StreamError:
        if exc.timeout and response.read_timeout is not None:
            return StreamError(
                f"{self.provider}: the stream stopped: nothing arrived within the read timeout "
                f"({response.read_timeout:g} s)",
                provider=self.provider,
            )
        return StreamError(f"{self.provider}: the stream broke: {exc}", provider=self.provider)

    def _idle(self, seconds: float) -> APITimeoutError:
        return APITimeoutError(
            f"{self.provider}: the stream sent no event for {seconds:g} s (only keep-alive comments)",
            provider=self.provider,
        )

    def lines(self, response: SyncResponse) -> Generator[str, None, None]:
        """The lines (``\\n`` or ``\\r\\n``) of a response opened with ``send(..., stream=True)``; a broken stream
        raises :class:`StreamError`, a line over :data:`MAX_LINE_CHARS` too, and only keep-alive comments for longer
        than the read timeout :class:`~llmkit.errors.APITimeoutError`; closing the generator closes the response."""
        splitter, idle = _LineSplitter(self.provider), response.read_timeout
        decode = codecs.getincrementaldecoder(response.encoding)(errors="replace").decode
        progress = time.monotonic()
        try:
            for chunk in response.iter_bytes():
                now = time.monotonic()  # once per arrival: the lines of one chunk arrived together
                for line in splitter.feed(decode(chunk)):
                    if line and line[0] != ":":
                        progress = now
                    elif idle is not None and now - progress > idle:
                        raise self._idle(idle)
                    yield line
            yield from splitter.feed(decode(b"", True))
            yield from splitter.flush()
        except NetworkError as exc:
            raise self._broken(exc, response) from exc
        finally:
            response.close()

    async def alines(self, response: AsyncResponse) -> AsyncGenerator[str, None]:
        """Async :meth:`lines`."""
        splitter, idle = _LineSplitter(self.provider), response.read_timeout
        decode = codecs.getincrementaldecoder(response.encoding)(errors="replace").decode
        progress = time.monotonic()
        try:
            async for chunk in response.aiter_bytes():
                now = time.monotonic()
                for line in splitter.feed(decode(chunk)):
                    if line and line[0] != ":":
                        progress = now
                    elif idle is not None and now - progress > idle:
                        raise self._idle(idle)
                    yield line
            for line in [*splitter.feed(decode(b"", True)), *splitter.flush()]:
                yield line
        except NetworkError as exc:
            raise self._broken(exc, response) from exc
        finally:
            await response.aclose()

    def _not_a_stream(self, response: Response, body: bytes) -> ResponseParseError:
        excerpt = body[:2000].decode("utf-8", errors="replace")
        return ResponseParseError(
            f"{self.provider}: asked {response.host} for an event stream, got "
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
            try:
                self._read(response, truncate=True)
            finally:
                response.close()
            raise self._not_a_stream(response, response.content)
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
            try:
                await self._aread(response, truncate=True)
            finally:
                await response.aclose()
            raise self._not_a_stream(response, response.content)
        lines = self.alines(response)
        try:
            async for event in aiter_sse(lines):
                yield event
        finally:
            await lines.aclose()
