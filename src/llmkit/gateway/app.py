"""The gateway as an ASGI app (Starlette): OpenAI's API in front of any llmkit LLM, router or cache.

One request: authenticate (the master key, a virtual key, or nobody when no master key is set), read the body
(size-capped), check the key's models and rpm/tpm limits (local, or Redis for a fleet), reserve the estimated cost
against its budget, call the LLM (a client that disconnects cancels the call), settle the real cost from the usage,
log the request. Streams are started before the reply's status is sent, so a failure before the first chunk is a
proper error status; a failure after it ends the stream with an error event and no ``[DONE]``.

The completion endpoints (``POST /v1/chat/completions``, ``/v1/completions``) are raw ASGI, reached before Starlette's
middleware and router: they read the headers and body from the ASGI messages and send prebuilt header lists. That
path is most of a request's cost that is the gateway's own (``python -m bench.gateway_profile``). Everything else
(models, health, metrics, the admin API, the lifespan) is a Starlette app behind it.

Example:
    >>> from starlette.testclient import TestClient
    >>> from llmkit.gateway.app import create_app
    >>> client = TestClient(create_app({"models": {"echo": {"model": "mock"}}}))
    >>> client.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    ...     ).json()["choices"][0]["message"]["content"]
    'hi'
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmkit._process import tune_gc
from llmkit.errors import LLMError, missing_extra
from llmkit.gateway.config import GatewayConfig, load_gateway_config
from llmkit.gateway.errors import GatewayError, from_llm_error
from llmkit.gateway.metrics import Metrics
from llmkit.gateway.pricing import Pricing
from llmkit.gateway.store import GatewayStore, UsageRecord, VirtualKey
from llmkit.llm import LLM
from llmkit.types import ChatResponse, CompletionResponse, Usage
from llmkit.wire.openai import ChunkEncoder, chat_completion_json, parse_chat_request, sse

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - the extra names itself
    raise missing_extra("starlette", "server") from exc

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("llmkit.gateway.access")
_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps builds an encoder per call for separators=
_JSON_HEADERS = ((b"content-type", b"application/json"),)
_SSE_HEADERS = ((b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"))
_DONE = sse("[DONE]")
# Fields of a /v1/completions body that are not the LLM's call arguments (answered by the gateway or unsupported).
_NOT_COMPLETION_KWARGS = frozenset(
    {"model", "prompt", "stream", "stream_options", "n", "echo", "best_of", "suffix", "user"}
)
CONFIG_ENV = "LLMKIT_GATEWAY_CONFIG"


class _Ids:
    """Unique ids without a system call each (``os.urandom`` costs tens of µs on some VMs): a random prefix per
    process, then a counter."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._count = itertools.count()

    def __call__(self, kind: str) -> str:
        return f"{kind}{self._prefix}{next(self._count):012x}"


def _default_database() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'llmkit' / 'gateway.sqlite'}"


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_encode(body), status, headers, media_type="application/json")


def _error(error: GatewayError, request_id: str) -> Response:
    return Response(error.body(), error.status, {**error.headers(), "x-request-id": request_id}, "application/json")


def _header(scope: Scope, name: bytes) -> str | None:
    """A request header (``name`` in lower case, as ASGI gives them); the first one when repeated."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_json(
    send: Send, status: int, body: bytes, request_id: str, extra: Mapping[str, str] | None = None
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", b"%d" % len(body)), (b"x-request-id", request_id.encode())]
    if extra:
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: GatewayError, request_id: str) -> None:
    await _send_json(send, error.status, error.body(), request_id, error.headers())


class _Incoming:
    """One request on the raw ASGI path: its scope and receive channel, and its disconnect watcher: one task that
    waits for ``http.disconnect`` and cancels the request's task (cheaper than racing the call in a second task)."""

    __slots__ = ("gone", "receive", "scope", "watcher")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.gone = False  # set by the watcher before it cancels the request's task
        self.watcher: asyncio.Task[None] | None = None

    def watch(self) -> None:
        """Start watching (once the body is read: the next message can only be the disconnect)."""
        task = asyncio.current_task()
        if task is not None:
            self.watcher = task.get_loop().create_task(self._watch(task))

    async def _watch(self, task: asyncio.Task[Any]) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        task.cancel()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()


async def _more(first: bytes, receive: Receive) -> AsyncIterator[bytes]:
    yield first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(400, "The client disconnected while sending the body")
        yield message.get("body", b"")
        if not message.get("more_body"):
            return


@dataclass(frozen=True)
class _Principal:
    """Who is calling: the admin (master key), a virtual key, or anyone (an open gateway)."""

    key: VirtualKey | None = None
    admin: bool = False


_OPEN, _ADMIN = _Principal(), _Principal(admin=True)


@dataclass
class _Call:
    """One request's bookkeeping, settled once whatever happens."""

    request_id: str
    model: str
    principal: _Principal
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    reserved: float = 0.0
    acquired: bool = False
    delivered: bool = False  # output reached the client (a stream's first chunk): the upstream billed something


class Gateway:
    """The gateway's state: models, keys, limits, budgets, metrics. :meth:`app` is the ASGI app."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.models: dict[str, LLM] = {name: entry.build(name) for name, entry in config.models.items()}
        self.master_key = config.master_key.get_secret_value() if config.master_key is not None else None
        self._master_bytes = self.master_key.encode() if self.master_key is not None else b""
        needs_store = config.database_url is not None or self.master_key is not None
        self.store = GatewayStore(config.database_url or _default_database()) if needs_store else None
        self.limits: Any
        if config.redis_url:
            from llmkit.router.state import RedisState

            self.limits = RedisState(config.redis_url, namespace="gateway", window_seconds=config.rate_window_seconds)
        else:
            from llmkit.router.state import LocalState

            self.limits = LocalState(window_seconds=config.rate_window_seconds)
        self.metrics = Metrics()
        self.pricing = Pricing(default_output_tokens=config.default_max_tokens_estimate)
        if config.prices is not None:
            from llmkit.usage.cost import load_prices

            load_prices(config.prices if isinstance(config.prices, str) else {"prices": config.prices})
        self._keys: dict[str, tuple[float, VirtualKey | None]] = {}
        self._ids = _Ids()

    # -- the app -------------------------------------------------------------------------------------------------

    def app(self) -> ASGIApp:
        """The ASGI app: the completion endpoints on the raw ASGI path, the rest on Starlette."""

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await self.aclose()

        chat, completions = self._asgi(self.chat_completions), self._asgi(self.completions)
        routes = [
            # Reached through Starlette only by other methods (a 405) or under a mount's root_path.
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/completions", completions, methods=["POST"]),
            Route("/v1/models", self._endpoint(self.list_models), methods=["GET"]),
            Route("/models", self._endpoint(self.list_models), methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
            Route("/admin/keys", self._endpoint(self.admin_keys), methods=["GET", "POST"]),
            Route("/admin/keys/{key_id}", self._endpoint(self.admin_key), methods=["GET", "DELETE"]),
        ]
        rest = Starlette(routes=routes, lifespan=lifespan)
        hot = {"/v1/chat/completions": chat, "/chat/completions": chat, "/v1/completions": completions,
               "/completions": completions}  # fmt: skip

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["method"] == "POST":
                handler = hot.get(scope["path"])
                if handler is not None:
                    await handler(scope, receive, send)
                    return
            await rest(scope, receive, send)

        return app

    def _asgi(self, handler: Callable[[_Incoming, Send, str, _Principal], Awaitable[None]]) -> ASGIApp:
        """A raw ASGI endpoint: authentication, typed errors, and a watcher that cancels the request's task when the
        client disconnects (uvicorn's ``send`` ignores a gone client, so nothing else would stop the upstream call)."""

        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            request_id = self._ids("req_")
            incoming = _Incoming(scope, receive)
            try:
                try:
                    principal = self._authenticate(lambda name: _header(scope, name))
                    await handler(incoming, send, request_id, principal)
                except GatewayError as exc:
                    await _send_error(send, exc, request_id)
                except Exception:  # a bug: logged with its traceback, answered in OpenAI's shape (not the details)
                    access_log.exception("request %s failed", request_id)
                    await _send_error(send, GatewayError(500, "internal error", "server_error"), request_id)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not incoming.gone or task is None:
                    raise  # the server is cancelling us (a shutdown): not ours to swallow
                task.uncancel()  # the client went away: the call was settled (499) where it was cancelled
            finally:
                incoming.stop()

        return endpoint

    def _endpoint(
        self, handler: Callable[[Request, str, _Principal], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request_id = self._ids("req_")
            try:
                principal = self._authenticate(lambda name: request.headers.get(name.decode("latin-1")))
                return await handler(request, request_id, principal)
            except GatewayError as exc:
                return _error(exc, request_id)
            except Exception:  # a bug: logged with its traceback, answered in OpenAI's shape (never the details)
                access_log.exception("request %s failed", request_id)
                return _error(GatewayError(500, "internal error", "server_error"), request_id)

        return endpoint

    async def aclose(self) -> None:
        """Close the models' connections and flush the usage log."""
        for llm in self.models.values():
            await llm.aclose()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)

    # -- authentication, limits, budgets -------------------------------------------------------------------------

    def _authenticate(self, header: Callable[[bytes], str | None]) -> _Principal:
        if self.master_key is None:
            return _OPEN
        authorization = header(b"authorization") or ""
        bearer = authorization[:7].lower() == "bearer "
        secret = authorization[7:].strip() if bearer else header(b"x-api-key") or ""
        if not secret:
            raise GatewayError(401, "Missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        if hmac.compare_digest(secret.encode(), self._master_bytes):
            return _ADMIN
        key = self._lookup(secret)
        if key is None:
            raise GatewayError(401, "Invalid API key", code="invalid_api_key")
        return _Principal(key=key)

    def _lookup(self, secret: str) -> VirtualKey | None:
        assert self.store is not None
        cached = self._keys.get(secret)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        key = self.store.lookup(secret)
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[secret] = (now + self.config.key_cache_seconds, key)
        return key

    def _admit(self, call: _Call, llm: LLM, size: tuple[int, int], kwargs: dict[str, Any]) -> None:
        """Check the key's models, limits and budget (``size``: the request's bytes and messages; a budgeted call
        without ``max_tokens`` gets the configured cap in ``kwargs``); a refusal is settled (logged, counted) and
        raised."""
        try:
            self._check(call, llm, size, kwargs)
        except GatewayError as exc:
            self._settle(call, exc.status, None, None, None)
            raise

    def _check(self, call: _Call, llm: LLM, size: tuple[int, int], kwargs: dict[str, Any]) -> None:
        key = call.principal.key
        if key is None:
            return
        if key.models is not None and call.model not in key.models:
            raise GatewayError(403, f"This key may not use model {call.model!r}", "permission_error", "model_denied")
        if key.rpm is not None or key.tpm is not None:
            if not self.limits.try_acquire(f"key:{key.id}", rpm=key.rpm, tpm=key.tpm, max_parallel=None):
                wait = self.limits.seconds_to_next_window()
                raise GatewayError(
                    429, "Rate limit reached for this key", "rate_limit_error", "rate_limit_exceeded", retry_after=wait
                )
            call.acquired = True
        if key.budget_usd is not None:
            if not (kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")):
                kwargs["max_tokens"] = self.config.default_max_tokens_estimate  # bounds the output, so the cost
            max_tokens = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
            estimate = self.pricing.estimate(llm, size[0], size[1], max_tokens)
            if estimate is None:
                raise GatewayError(
                    403,
                    f"Model {call.model!r} has no known price, so a key with a budget cannot use it; give it a price "
                    "(llmkit.usage.cost.set_price or the 'prices' of the gateway config)",
                    "permission_error",
                    "unpriced_model",
                )
            assert self.store is not None
            if not self.store.reserve(key.id, estimate):
                raise GatewayError(429, "This key's budget is spent", "insufficient_quota", "insufficient_quota")
            call.reserved = estimate

    def _settle(
        self, call: _Call, status: int, usage: Usage | None, cost: float | None, deployment: str | None
    ) -> None:
        key = call.principal.key
        if key is not None:
            if call.acquired:
                self.limits.release(f"key:{key.id}")
                if usage is not None and usage.total_tokens:
                    self.limits.add_tokens(f"key:{key.id}", usage.total_tokens)
            if call.reserved or (key.budget_usd is not None and cost):
                assert self.store is not None
                # An answer whose usage was not reported (or a stream cut after output) is charged what was
                # reserved, its upper bound: a budget never counts unreported work as free.
                billed = status == 200 or call.delivered
                spent = cost if cost is not None else (call.reserved if billed else 0.0)
                self.store.settle(key.id, call.reserved, spent)
        elapsed = time.perf_counter() - call.started
        self.metrics.observe(call.model, status, elapsed, usage, cost)
        if self.store is not None:
            self.store.log(
                UsageRecord(
                    request_id=call.request_id,
                    key_id=key.id if key is not None else None,
                    model=call.model,
                    deployment=deployment,
                    input_tokens=usage.prompt_tokens if usage is not None else None,
                    output_tokens=usage.completion_tokens if usage is not None else None,
                    cached_tokens=getattr(usage, "cache_read_tokens", None),
                    reasoning_tokens=getattr(usage, "reasoning_tokens", None),
                    cost_usd=cost,
                    latency_ms=elapsed * 1000,
                    status=status,
                    stream=call.stream,
                )
            )
        if not access_log.isEnabledFor(logging.INFO):
            return
        access_log.info(
            json.dumps(
                {
                    "request_id": call.request_id,
                    "worker": os.getpid(),
                    "key_id": key.id if key is not None else None,
                    "model": call.model,
                    "status": status,
                    "stream": call.stream,
                    "ms": round(elapsed * 1000, 1),
                    "tokens": usage.total_tokens if usage is not None else None,
                }
            )
        )

    # -- requests ------------------------------------------------------------------------------------------------

    async def _body(self, request: Request) -> tuple[Any, int]:
        """The request's JSON and its size in bytes (Starlette's endpoints: the admin API)."""
        return self._parse_body(await self._read(request.headers.get("content-length"), request.stream()))

    async def _incoming_body(self, incoming: _Incoming) -> tuple[Any, int]:
        """The request's JSON and its size in bytes (the raw ASGI path); then the disconnect watcher starts, as the
        next ASGI message can only be the disconnect."""
        self._check_declared(_header(incoming.scope, b"content-length"))
        message = await incoming.receive()
        raw = message.get("body", b"")
        if message.get("more_body"):  # a body in several messages: Starlette's loop, with the cap
            raw = await self._read(None, _more(raw, incoming.receive))
        elif len(raw) > self.config.max_request_bytes:
            raise self._too_large()
        body = self._parse_body(raw)
        incoming.watch()
        return body

    def _too_large(self) -> GatewayError:
        return GatewayError(413, f"Request body over {self.config.max_request_bytes} bytes", code="request_too_large")

    def _check_declared(self, declared: str | None) -> None:
        if declared is not None and declared.isdigit() and int(declared) > self.config.max_request_bytes:
            raise self._too_large()

    async def _read(self, declared: str | None, chunks: AsyncIterator[bytes]) -> bytes:
        self._check_declared(declared)
        limit = self.config.max_request_bytes
        parts, size = [], 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise self._too_large()
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @staticmethod
    def _parse_body(raw: bytes) -> tuple[Any, int]:
        try:
            return json.loads(raw), len(raw)
        except ValueError:
            raise GatewayError(400, "The request body is not valid JSON") from None

    def _model(self, name: Any) -> LLM:
        llm = self.models.get(str(name))
        if llm is None:
            raise GatewayError(404, f"The model {name!r} does not exist", code="model_not_found", param="model")
        return llm

    async def chat_completions(self, incoming: _Incoming, send: Send, request_id: str, principal: _Principal) -> None:
        body, request_bytes = await self._incoming_body(incoming)
        try:
            parsed = parse_chat_request(body)
        except ValueError as exc:
            raise GatewayError(400, str(exc)) from None
        llm = self._model(parsed.model)
        call = _Call(request_id, parsed.model, principal, parsed.stream)
        kwargs = parsed.call_kwargs()
        self._admit(call, llm, (request_bytes, len(parsed.messages)), kwargs)
        if not parsed.stream:
            await self._answer(send, call, llm, llm.achat(parsed.messages, **kwargs), self._chat_json)
            return
        encoder = ChunkEncoder(parsed.model, self._ids("chatcmpl-"))

        async def start() -> AsyncGenerator[ChatResponse, None]:
            return await llm.astream_chat(parsed.messages, **kwargs)

        def final(last: ChatResponse | None) -> list[dict[str, Any]]:
            return encoder.final(last, parsed.include_usage)

        await self._stream(send, call, llm, start, encoder.encode, final)

    async def completions(self, incoming: _Incoming, send: Send, request_id: str, principal: _Principal) -> None:
        body, request_bytes = await self._incoming_body(incoming)
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            raise GatewayError(400, "'prompt' must be a string", param="prompt")
        model = str(body.get("model") or "")
        llm = self._model(model)
        call = _Call(request_id, model, principal, bool(body.get("stream")))
        kwargs = {k: v for k, v in body.items() if k not in _NOT_COMPLETION_KWARGS and v is not None}
        self._admit(call, llm, (request_bytes, 1), kwargs)
        completion_id = self._ids("cmpl-")
        created = int(time.time())

        def chunk(text: str, finish: str | None) -> dict[str, Any]:
            choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
            return {"id": completion_id, "object": "text_completion", "created": created, "model": model,
                    "choices": [choice]}  # fmt: skip

        if not call.stream:

            def to_json(response: Any) -> dict[str, Any]:
                out = chunk(response.text, response.additional_kwargs.get("finish_reason") or "stop")
                if response.usage is not None:
                    out["usage"] = _usage_json(response.usage)
                return out

            await self._answer(send, call, llm, llm.acomplete(body["prompt"], **kwargs), to_json)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def encode(response: CompletionResponse) -> dict[str, Any] | None:
            return chunk(response.delta, None) if response.delta else None

        def final(last: CompletionResponse | None) -> list[dict[str, Any]]:
            reason = (last.additional_kwargs.get("finish_reason") if last is not None else None) or "stop"
            closing = [chunk("", reason)]
            if include_usage:
                closing.append({**chunk("", None), "choices": [], "usage": _usage_json(last.usage if last else None)})
            return closing

        async def start() -> AsyncGenerator[CompletionResponse, None]:
            return await llm.astream_complete(body["prompt"], **kwargs)

        await self._stream(send, call, llm, start, encode, final)

    def _chat_json(self, response: Any) -> dict[str, Any]:
        return chat_completion_json(response, "", self._ids("chatcmpl-"))  # the caller sets the public model name

    async def _answer(
        self,
        send: Send,
        call: _Call,
        llm: LLM,
        work: Awaitable[Any],
        to_json: Callable[[Any], dict[str, Any]],
    ) -> None:
        """A one-shot answer; a client that disconnects first cancels the call (the watcher cancels this task)."""
        try:
            response = await work
        except asyncio.CancelledError:
            self._settle(call, 499, None, None, None)
            raise
        except LLMError as exc:
            error = from_llm_error(exc)
            self._settle(call, error.status, None, None, None)
            await _send_error(send, error, call.request_id)
            return
        body = to_json(response)
        body["model"] = call.model
        cost = self.pricing.actual(response.usage, llm)
        self._settle(call, 200, response.usage, cost, _deployment(response))
        await _send_json(send, 200, _encode(body).encode(), call.request_id)

    async def _stream(
        self,
        send: Send,
        call: _Call,
        llm: LLM,
        start: Callable[[], Awaitable[AsyncGenerator[Any, None]]],
        encode: Callable[[Any], dict[str, Any] | None],
        final: Callable[[Any], list[dict[str, Any]]],
    ) -> None:
        """A streamed answer: the first chunk is awaited before the status is sent."""
        try:
            stream = await start()
            first = await anext(stream, None)
        except asyncio.CancelledError:
            self._settle(call, 499, None, None, None)
            raise
        except LLMError as exc:
            error = from_llm_error(exc)
            self._settle(call, error.status, None, None, None)
            await _send_error(send, error, call.request_id)
            return

        async def event(data: dict[str, Any]) -> None:
            data["model"] = call.model
            await send({"type": "http.response.body", "body": sse(data), "more_body": True})

        last, status = first, 499  # until the stream ends one way or the other, the client went away
        headers = [*_SSE_HEADERS, (b"x-request-id", call.request_id.encode())]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if first is not None:
                call.delivered = True
                data = encode(first)
                if data is not None:
                    await event(data)
                async for chunk in stream:
                    last = chunk
                    data = encode(chunk)
                    if data is not None:
                        await event(data)
            for data in final(last):
                await event(data)
            await send({"type": "http.response.body", "body": _DONE})
            status = 200
        except Exception as exc:  # no [DONE]: the client sees the stream failed
            if isinstance(exc, LLMError):
                error = from_llm_error(exc)
            else:  # a bug: logged with its traceback; the status line is sent, so an error event says it
                access_log.exception("request %s failed", call.request_id)
                error = GatewayError(500, "internal error", "server_error")
            status = error.status
            await send({"type": "http.response.body", "body": b"data: " + error.body() + b"\n\n"})
        finally:
            try:
                await stream.aclose()
            finally:  # settled even when closing is cancelled (the watcher wakes once the response is complete)
                usage = last.usage if last is not None else None
                cost = self.pricing.actual(usage, llm) if status == 200 else None
                self._settle(call, status, usage, cost, _deployment(last) if last is not None else None)

    async def list_models(self, request: Request, request_id: str, principal: _Principal) -> Response:
        allowed = principal.key.models if principal.key is not None else None
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "llmkit"}
            for name in self.models
            if allowed is None or name in allowed
        ]
        return _json({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok", "models": len(self.models)})

    async def openapi(self, request: Request) -> Response:
        from llmkit.gateway.openapi import document

        return _json(document(list(self.models)))

    async def prometheus(self, request: Request) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    # -- admin ---------------------------------------------------------------------------------------------------

    def _admin_store(self, principal: _Principal) -> GatewayStore:
        if self.store is None or self.master_key is None:
            raise GatewayError(404, "Virtual keys need a master_key in the gateway config", code="not_configured")
        if not principal.admin:
            raise GatewayError(403, "The admin API needs the master key", "permission_error", "admin_only")
        return self.store

    async def admin_keys(self, request: Request, request_id: str, principal: _Principal) -> Response:
        store = self._admin_store(principal)
        if request.method == "GET":
            return _json({"data": [key.public() for key in store.list_keys()]})
        body, _ = await self._body(request)
        try:
            wanted = _KeyRequest.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise GatewayError(400, f"Invalid key request: {problems}") from None
        key, secret = store.create_key(
            name=wanted.name, models=wanted.models, rpm=wanted.rpm, tpm=wanted.tpm, budget_usd=wanted.budget_usd
        )
        return _json({**key.public(), "key": secret}, status=201)

    async def admin_key(self, request: Request, request_id: str, principal: _Principal) -> Response:
        store = self._admin_store(principal)
        key_id = request.path_params["key_id"]
        if request.method == "DELETE":
            if not store.revoke(key_id):
                raise GatewayError(404, f"No key {key_id!r}", code="key_not_found")
            self._keys.clear()  # this worker forgets at once; the others within key_cache_seconds
        key = store.get_key(key_id)
        if key is None:
            raise GatewayError(404, f"No key {key_id!r}", code="key_not_found")
        return _json({**key.public(), "usage": store.usage(key_id) if request.method == "GET" else None})


class _KeyRequest(BaseModel):
    """What ``POST /admin/keys`` accepts."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(default="unnamed", max_length=200)
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=0, le=10**9)
    tpm: int | None = Field(default=None, ge=0, le=10**12)
    budget_usd: float | None = Field(default=None, ge=0, le=10**9)


def _usage_json(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _deployment(response: Any) -> str | None:
    value = response.additional_kwargs.get("deployment") if response is not None else None
    return str(value) if value is not None else None


def create_app(config: GatewayConfig | Mapping[str, Any] | str | Path | None = None) -> ASGIApp:
    """The gateway's ASGI app for a config (an object, a mapping, a file, or None for the embedded model)."""
    if not isinstance(config, GatewayConfig):
        config = load_gateway_config(config)
    return Gateway(config).app()


def app_from_env() -> ASGIApp:
    """The app for the config file named by ``$LLMKIT_GATEWAY_CONFIG`` (how ``llmkit serve --workers N`` starts
    each worker), in a process whose garbage collector is set for serving (:func:`tune_gc`)."""
    app = create_app(os.environ.get(CONFIG_ENV) or None)
    tune_gc()
    return app
