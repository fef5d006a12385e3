"""The provider contract for HTTP services.

An HTTP provider is a translator: it turns llmkit's messages and kwargs into a :class:`~llmkit.transport.Request`,
and the service's JSON (or stream events) back into responses. It never touches the network: :class:`HTTPLLM` owns
the transport, and the two mixins below run the four primitives of a family (sync, stream, async, async stream) on
it. A provider inherits the mixin of each family its service natively has:

* :class:`ChatOverHTTP` needs ``_chat_request``, ``_parse_chat`` and ``_chat_stream_parser``;
* :class:`CompletionOverHTTP` needs ``_completion_request``, ``_parse_completion`` and
  ``_completion_stream_parser``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import Field, PrivateAttr

from llmkit.errors import APITimeoutError, StreamError
from llmkit.llm import LLM
from llmkit.transport import HTTPTransport, Request, RetryPolicy, ServerSentEvent
from llmkit.transport.client import DEFAULT_MAX_BODY_BYTES
from llmkit.transport.errors import ErrorHook
from llmkit.types import ChatMessage, ChatResponse, CompletionResponse, TextBlock, _MediaBlock
from llmkit.wire.stream import StreamParser

R = TypeVar("R", ChatResponse, CompletionResponse)


def call_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the transport's per-call options out of the model kwargs."""
    options: dict[str, Any] = {}
    if kwargs:
        if "timeout" in kwargs:
            options["timeout"] = kwargs.pop("timeout")
        if "max_retries" in kwargs:
            options["max_retries"] = kwargs.pop("max_retries")
    return options


#: Events read after the end marker, looking for the end of the body (so the connection can be reused).
_DRAIN_EVENTS = 16


def _run_stream(events: Iterator[ServerSentEvent], parser: StreamParser[R]) -> Iterator[R]:
    drained = 0
    try:
        for event in events:
            if parser.done:  # drain a little, so the connection goes back to the pool; then stop
                drained += 1
                if drained > _DRAIN_EVENTS:
                    break
                continue
            chunk = parser.feed(event)
            if chunk is not None:
                yield chunk
    except StreamError as exc:
        exc.received = parser.text
        raise
    except APITimeoutError:
        if not parser.done:
            raise
        # After the end marker the answer is complete: a server that keeps sending keep-alives is just cut off.
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    parser.ensure_complete()


async def _arun_stream(events: AsyncIterator[ServerSentEvent], parser: StreamParser[R]) -> AsyncIterator[R]:
    drained = 0
    try:
        async for event in events:
            if parser.done:  # drain a little, so the connection goes back to the pool; then stop
                drained += 1
                if drained > _DRAIN_EVENTS:
                    break
                continue
            chunk = parser.feed(event)
            if chunk is not None:
                yield chunk
    except StreamError as exc:
        exc.received = parser.text
        raise
    except APITimeoutError:
        if not parser.done:
            raise
        # After the end marker the answer is complete: a server that keeps sending keep-alives is just cut off.
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    parser.ensure_complete()


class HTTPLLM(LLM):
    """An LLM served over HTTP: owns one :class:`HTTPTransport` (pooled, closed by ``close()``/``aclose()``).

    Args:
        timeout: seconds per phase (connect is capped at 10 s), or an ``httpx.Timeout``; per call ``timeout=``.
        max_retries: retries of 408/409/429/5xx and connection errors (default 2); per call ``max_retries=``.
        retry_policy: the backoff between retries (``RetryPolicy(initial_delay=..., max_delay=...)``).
        max_body_bytes: the largest answer read (32 MB); a longer one is a typed error, a longer error is truncated.
        allow_insecure_http: allow sending the key over plain http to a host that is not loopback.
    """

    timeout: float | None = Field(default=60.0, gt=0, description="Request timeout in seconds (per phase).")
    max_retries: int = Field(default=2, ge=0, description="Retries of transient failures.")
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0, description="The largest answer read.")
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy, exclude=True, description="Backoff between retries.")
    allow_insecure_http: bool = Field(default=False, description="Send keys over http:// to non-loopback hosts.")

    _transport: HTTPTransport | None = PrivateAttr(default=None)

    def _transport_settings(self) -> dict[str, Any]:
        """``base_url``, ``headers``, ``error_hook`` and ``provider`` for the transport."""
        raise NotImplementedError

    def _error_hook(self) -> ErrorHook | None:
        return None

    @property
    def transport(self) -> HTTPTransport:
        """The transport, created on first use (constructing an LLM does no I/O)."""
        # Read from pydantic's private dict directly: ``self._transport`` goes through ``__getattr__``, a few µs a call.
        private = self.__pydantic_private__
        transport = private.get("_transport") if private is not None else None
        if transport is None:
            transport = self._transport = self._new_transport()
        return transport

    def _new_transport(self, **plug: Any) -> HTTPTransport:
        return HTTPTransport(
            timeout=self.timeout,
            max_retries=self.max_retries,
            callback_manager=self.callback_manager,
            error_hook=self._error_hook(),
            max_body_bytes=self.max_body_bytes,
            retry_policy=self.retry_policy,
            allow_insecure_http=self.allow_insecure_http,
            **self._transport_settings(),
            **plug,
        )

    def with_http_clients(
        self,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> HTTPLLM:
        """Send through your own httpx clients (proxies, custom TLS; you close them) or httpx transports
        (``httpx.MockTransport``, record/replay) under llmkit's pools. The base URL, the key and the headers are
        added to every request, so a client with none of them works.

        Example:
            >>> import httpx
            >>> from llmkit import ChatMessage, OpenAILike
            >>> def handler(request: httpx.Request) -> httpx.Response:
            ...     message = {"role": "assistant", "content": f"{request.url.path} {request.headers['authorization']}"}
            ...     return httpx.Response(200, json={"choices": [{"index": 0, "message": message}]})
            >>> llm = OpenAILike(model="m", api_base="http://127.0.0.1:8000/v1", api_key="sk-1")
            >>> llm = llm.with_http_clients(httpx.Client(transport=httpx.MockTransport(handler)))
            >>> llm.chat([ChatMessage(role="user", content="hi")]).message.content
            '/v1/chat/completions Bearer sk-1'
        """
        self._transport = self._new_transport(
            http_client=client,
            async_http_client=async_client,
            http_transport=transport,
            async_http_transport=async_transport,
        )
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


class ChatOverHTTP(HTTPLLM):
    """The chat family on the transport."""

    def _chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stream: bool) -> Request:
        raise NotImplementedError

    def _parse_chat(self, body: Any) -> ChatResponse:
        raise NotImplementedError

    def _chat_stream_parser(self) -> StreamParser[ChatResponse]:
        raise NotImplementedError

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        options = call_options(kwargs)
        return self._parse_chat(self.transport.request_json(self._chat_request(messages, kwargs, False), **options))

    #: Media blocks the wire format sends as bytes: on the async path their URLs are fetched first, without
    #: blocking the event loop (the sync path fetches them while building the request).
    fetched_media: ClassVar[tuple[type[_MediaBlock], ...]] = ()

    def _to_fetch(self, messages: Sequence[ChatMessage]) -> list[_MediaBlock]:
        """The media blocks to fetch before the request is built (found without a coroutine: usually none)."""
        kinds = self.fetched_media
        found: list[Any] = []
        if kinds:
            for message in messages:
                for block in message.blocks:
                    # a text block first, by its type: isinstance against pydantic's (ABC) classes costs more
                    if type(block) is not TextBlock and isinstance(block, kinds):
                        found.append(block)
        return found

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        options = call_options(kwargs)
        for block in self._to_fetch(messages):
            await block.aprefetch()
        request = self._chat_request(messages, kwargs, False)
        return self._parse_chat(await self.transport.arequest_json(request, **options))

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[ChatResponse]:
        options = call_options(kwargs)
        request = self._chat_request(messages, kwargs, True)
        return _run_stream(self.transport.stream_events(request, **options), self._chat_stream_parser())

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        options = call_options(kwargs)
        for block in self._to_fetch(messages):
            await block.aprefetch()
        request = self._chat_request(messages, kwargs, True)
        async for chunk in _arun_stream(self.transport.astream_events(request, **options), self._chat_stream_parser()):
            yield chunk


class CompletionOverHTTP(HTTPLLM):
    """The completion family on the transport."""

    def _completion_request(self, prompt: str, kwargs: dict[str, Any], stream: bool) -> Request:
        raise NotImplementedError

    def _parse_completion(self, body: Any) -> CompletionResponse:
        raise NotImplementedError

    def _completion_stream_parser(self) -> StreamParser[CompletionResponse]:
        raise NotImplementedError

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        options = call_options(kwargs)
        request = self._completion_request(prompt, kwargs, False)
        return self._parse_completion(self.transport.request_json(request, **options))

    async def _acomplete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        options = call_options(kwargs)
        request = self._completion_request(prompt, kwargs, False)
        return self._parse_completion(await self.transport.arequest_json(request, **options))

    def _stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[CompletionResponse]:
        options = call_options(kwargs)
        request = self._completion_request(prompt, kwargs, True)
        return _run_stream(self.transport.stream_events(request, **options), self._completion_stream_parser())

    def _astream_complete(self, prompt: str, **kwargs: Any) -> AsyncIterator[CompletionResponse]:
        options = call_options(kwargs)
        request = self._completion_request(prompt, kwargs, True)
        return _arun_stream(self.transport.astream_events(request, **options), self._completion_stream_parser())
