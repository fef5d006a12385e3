"""The gateway as an ASGI app (Starlette): OpenAI's API in front of any llmkit LLM, router or cache.

One request: authenticate (the master key, a virtual key, or nobody when no master key is set), read the body
(size-capped), check the key's models and rpm/tpm limits (local, or Redis for a fleet), reserve the estimated cost
against its budget, call the LLM (a client that disconnects cancels the call), settle the real cost from the usage,
log the request. Streams are started before the reply's status is sent, so a failure before the first chunk is a
proper error status; a failure after it ends the stream with an error event and no ``[DONE]``.

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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - the extra names itself
    raise missing_extra("starlette", "server") from exc

access_log = logging.getLogger("llmkit.gateway.access")
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
    return Response(json.dumps(body, separators=(",", ":")), status, headers, media_type="application/json")


def _error(error: GatewayError, request_id: str) -> Response:
    return Response(error.body(), error.status, {**error.headers(), "x-request-id": request_id}, "application/json")


@dataclass
class _Principal:
    """Who is calling: the admin (master key), a virtual key, or anyone (an open gateway)."""

    key: VirtualKey | None = None
    admin: bool = False


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

    def app(self) -> Starlette:
        """The ASGI app."""

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await self.aclose()

        routes = [
            Route("/v1/chat/completions", self._endpoint(self.chat_completions), methods=["POST"]),
            Route("/chat/completions", self._endpoint(self.chat_completions), methods=["POST"]),
            Route("/v1/completions", self._endpoint(self.completions), methods=["POST"]),
            Route("/completions", self._endpoint(self.completions), methods=["POST"]),
            Route("/v1/models", self._endpoint(self.list_models), methods=["GET"]),
            Route("/models", self._endpoint(self.list_models), methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
            Route("/admin/keys", self._endpoint(self.admin_keys), methods=["GET", "POST"]),
            Route("/admin/keys/{key_id}", self._endpoint(self.admin_key), methods=["GET", "DELETE"]),
        ]
        return Starlette(routes=routes, lifespan=lifespan)

    def _endpoint(
        self, handler: Callable[[Request, str, _Principal], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            request_id = self._ids("req_")
            try:
                principal = self._authenticate(request)
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

    def _authenticate(self, request: Request) -> _Principal:
        if self.master_key is None:
            return _Principal()
        header = request.headers.get("authorization", "")
        secret = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        if not secret:
            raise GatewayError(401, "Missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        if hmac.compare_digest(secret.encode(), self.master_key.encode()):
            return _Principal(admin=True)
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
        """The request's JSON and its size in bytes."""
        limit = self.config.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise GatewayError(413, f"Request body over {limit} bytes", code="request_too_large")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise GatewayError(413, f"Request body over {limit} bytes", code="request_too_large")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks)), size
        except ValueError:
            raise GatewayError(400, "The request body is not valid JSON") from None

    def _model(self, name: Any) -> LLM:
        llm = self.models.get(str(name))
        if llm is None:
            raise GatewayError(404, f"The model {name!r} does not exist", code="model_not_found", param="model")
        return llm

    async def chat_completions(self, request: Request, request_id: str, principal: _Principal) -> Response:
        body, request_bytes = await self._body(request)
        try:
            parsed = parse_chat_request(body)
        except ValueError as exc:
            raise GatewayError(400, str(exc)) from None
        llm = self._model(parsed.model)
        call = _Call(request_id, parsed.model, principal, parsed.stream)
        kwargs = parsed.call_kwargs()
        self._admit(call, llm, (request_bytes, len(parsed.messages)), kwargs)
        if not parsed.stream:
            return await self._answer(request, call, llm, llm.achat(parsed.messages, **kwargs), self._chat_json)
        encoder = ChunkEncoder(parsed.model, self._ids("chatcmpl-"))

        async def start() -> AsyncGenerator[ChatResponse, None]:
            return await llm.astream_chat(parsed.messages, **kwargs)

        return await self._stream(
            call, llm, start, encoder.encode, lambda last: encoder.final(last, parsed.include_usage)
        )

    async def completions(self, request: Request, request_id: str, principal: _Principal) -> Response:
        body, request_bytes = await self._body(request)
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

            return await self._answer(request, call, llm, llm.acomplete(body["prompt"], **kwargs), to_json)
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

        return await self._stream(call, llm, start, encode, final)

    def _chat_json(self, response: Any) -> dict[str, Any]:
        return chat_completion_json(response, "", self._ids("chatcmpl-"))  # the caller sets the public model name

    async def _answer(
        self,
        request: Request,
        call: _Call,
        llm: LLM,
        work: Awaitable[Any],
        to_json: Callable[[Any], dict[str, Any]],
    ) -> Response:
        """A one-shot answer; a client that disconnects first cancels the call."""
        task = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not task.done():
            task.cancel()
            self._settle(call, 499, None, None, None)
            return Response(status_code=499)
        try:
            response = task.result()
        except LLMError as exc:
            error = from_llm_error(exc)
            self._settle(call, error.status, None, None, None)
            return _error(error, call.request_id)
        body = to_json(response)
        body["model"] = call.model
        cost = self.pricing.actual(response.usage, llm)
        self._settle(call, 200, response.usage, cost, _deployment(response))
        return _json(body, headers={"x-request-id": call.request_id})

    async def _stream(
        self,
        call: _Call,
        llm: LLM,
        start: Callable[[], Awaitable[AsyncGenerator[Any, None]]],
        encode: Callable[[Any], dict[str, Any] | None],
        final: Callable[[Any], list[dict[str, Any]]],
    ) -> Response:
        """A streamed answer: the first chunk is awaited before the status is sent."""
        try:
            stream = await start()
            first = await anext(stream, None)
        except LLMError as exc:
            error = from_llm_error(exc)
            self._settle(call, error.status, None, None, None)
            return _error(error, call.request_id)

        async def events() -> AsyncGenerator[bytes, None]:
            last, status = first, 499  # until the stream ends one way or the other, the client went away
            try:
                if first is not None:
                    call.delivered = True
                    data = encode(first)
                    if data is not None:
                        data["model"] = call.model
                        yield sse(data)
                    async for chunk in stream:
                        last = chunk
                        data = encode(chunk)
                        if data is not None:
                            data["model"] = call.model
                            yield sse(data)
                for data in final(last):
                    data["model"] = call.model
                    yield sse(data)
                yield sse("[DONE]")
                status = 200
            except LLMError as exc:
                error = from_llm_error(exc)
                status = error.status
                yield b"data: " + error.body() + b"\n\n"  # no [DONE]: the client sees the stream failed
            finally:
                await stream.aclose()
                usage = last.usage if last is not None else None
                cost = self.pricing.actual(usage, llm) if status == 200 else None
                self._settle(call, status, usage, cost, _deployment(last) if last is not None else None)

        headers = {"x-request-id": call.request_id, "cache-control": "no-cache"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

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


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body was read, so the next ASGI message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def create_app(config: GatewayConfig | Mapping[str, Any] | str | Path | None = None) -> Starlette:
    """The gateway's ASGI app for a config (an object, a mapping, a file, or None for the embedded model)."""
    if not isinstance(config, GatewayConfig):
        config = load_gateway_config(config)
    return Gateway(config).app()


def app_from_env() -> Starlette:
    """The app for the config file named by ``$LLMKIT_GATEWAY_CONFIG`` (how ``llmkit serve --workers N`` starts
    each worker)."""
    return create_app(os.environ.get(CONFIG_ENV) or None)
