"""Router: one LLM in front of groups of deployments, with load balancing, cooldowns, limits and fallbacks.

A call names a group (``model="fast"``, else the default group). The router tries the group's available
deployments in the strategy's order, then the fallback groups', within one budget: ``max_attempts`` calls in all
and ``total_timeout`` seconds. Transport retries inside a deployment are switched off for routed calls (a deployment
that has ``max_retries`` gets ``max_retries=0``), so attempts never multiply: the router's retry *is* the next
deployment. Failures feed circuit breakers (see :mod:`llmkit.router.state`):

* 429: cool down for the server's Retry-After (or ``cooldown_seconds``); 5xx, timeouts and connection errors: cool
  down for ``cooldown_seconds``; other service-side failures (auth, not found): cool down once ``allowed_failures``
  happen within ``failure_window`` seconds. A group with one deployment cools down too.
* A deployment whose capabilities say it is not ``replay_safe`` (its calls start billable jobs) is never
  re-sent elsewhere after an ambiguous failure (5xx, timeout, connection error): the error is raised.
* A context-window error moves to ``context_window_fallbacks``; a content-filter error to
  ``content_policy_fallbacks``; any other 400 is the caller's and is raised at once.
* Streams fail over only before their first chunk. Once a chunk has reached the caller, a failure raises
  :class:`~llmkit.errors.StreamError` carrying the text received: never a truncated answer reported as complete.
  With ``resume=True`` the router instead continues the answer on another deployment from the text received
  (completion calls by extending the prompt; chat calls only on deployments with ``assistant_prefill``).
  ``stream_idle_timeout`` bounds the wait for each chunk of an async stream (sync streams rely on the deployment's
  read timeout).

Every attempt is reported to the router's callbacks (``on_attempt``). Limits (rpm, tpm, parallel calls) and
cooldowns are local, or shared by every process using the same ``redis_url``.

Example:
    >>> from llmkit import ChatMessage, ScriptedLLM
    >>> from llmkit.router import Router
    >>> router = Router(groups={"fast": [ScriptedLLM(responses=["hi"])], "smart": [ScriptedLLM(responses=["hello"])]})
    >>> router.chat([ChatMessage(role="user", content="x")], model="smart").message.content
    'hello'
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import tomllib
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

from pydantic import Field, model_validator

from llmkit.callbacks import AttemptEvent, Operation, begin, finish, scope
from llmkit.capabilities import Capabilities
from llmkit.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    LLMError,
    NoDeploymentAvailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
)
from llmkit.llm import LLM
from llmkit.router.deployment import Deployment
from llmkit.router.state import LocalState, RedisState, RouterState
from llmkit.router.strategies import STRATEGIES, Strategy
from llmkit.structured import PydanticProgramMode
from llmkit.types import ChatMessage, ChatResponse, LLMMetadata, MessageRole, text_message
from llmkit.wrapper import LLMCall, Response, WrapperLLM

_CONTEXT_WINDOW = re.compile(r"context.{0,20}(length|window)|maximum context|too many tokens|prompt is too long", re.I)


def is_context_window_error(error: BaseException) -> bool:
    """A 400 that says the prompt does not fit the model's context window."""
    return isinstance(error, BadRequestError) and bool(_CONTEXT_WINDOW.search(str(error)))


def _text_of(chunk: Response) -> str:
    return chunk.message.content or "" if isinstance(chunk, ChatResponse) else chunk.text


class _Plan:
    """The attempts of one routed call: which deployment next, and what each outcome means. Written once, driven by
    the sync and async hooks alike."""

    def __init__(self, router: Router, group: str) -> None:
        self.router, self.group = router, group
        self.state = router.state
        self.strategy = cast(Strategy, router.strategy)  # a name is resolved by the validator
        self.callbacks = router.callback_manager if router.callback_manager.listening else None
        #: The routed call as an operation (traces: the attempts are its children), and the attempt under way.
        self.op = begin("router", router.callback_manager, group=group) if self.callbacks is not None else None
        self.attempt_op: Operation | None = None
        self.groups = [group, *router.fallbacks.get(group, [])]
        self.queue: list[Deployment] = []
        self.tried: set[str] = set()
        self.attempts: list[tuple[str, BaseException]] = []
        self.retry_after: float | None = None
        self.deadline = None if router.total_timeout is None else time.monotonic() + router.total_timeout
        self.current_group = group

    def _note_wait(self, seconds: float) -> None:
        self.retry_after = seconds if self.retry_after is None else min(self.retry_after, seconds)

    def next(self, eligible: Callable[[Deployment], bool] | None = None) -> Deployment | None:
        """The next deployment to call (that is ``eligible``), its limits taken; None when the budget or the
        candidates are exhausted."""
        router, state = self.router, self.state
        while len(self.attempts) < router.max_attempts:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return None
            if not self.queue:
                if not self.groups:
                    return None
                self.current_group = self.groups.pop(0)
                deployments = router._deployments(self.current_group)
                self.queue = self.strategy(deployments, state) if len(deployments) > 1 else list(deployments)
                continue
            deployment = self.queue.pop(0)
            if deployment.name in self.tried or (eligible is not None and not eligible(deployment)):
                continue
            if not state.claim(deployment.name):
                self._note_wait(state.cooldown_remaining(deployment.name) or state.probe_seconds)
                continue
            if not state.try_acquire(
                deployment.name, rpm=deployment.rpm, tpm=deployment.tpm, max_parallel=deployment.max_parallel
            ):
                self._note_wait(state.seconds_to_next_window())
                continue
            self.tried.add(deployment.name)
            if self.op is not None:
                self.attempt_op = begin(
                    "router_attempt",
                    parent=self.op,
                    group=self.current_group,
                    deployment=deployment.name,
                    attempt=len(self.attempts) + 1,
                )
            return deployment
        return None

    def scope(self) -> scope:
        """The attempt under way as the current call: the deployment's call becomes its child."""
        return scope(self.attempt_op)

    def end(self, error: BaseException | None = None) -> None:
        """The routed call is over (with ``error`` if it failed): close its operation and any open attempt."""
        finish(self.attempt_op, error)
        finish(self.op, error)

    def call_on(self, call: LLMCall, deployment: Deployment) -> LLMCall:
        """The call as sent to ``deployment``: its transport retries off (the router's next attempt is the retry)."""
        if deployment.has_retries and "max_retries" not in call.kwargs:
            return call.with_kwargs(max_retries=0)
        return call

    def succeeded(
        self, deployment: Deployment, started: float, first_token: float | None, last: Response | None
    ) -> None:
        state = self.state
        elapsed = time.monotonic() - started
        state.release(deployment.name)
        state.recover(deployment.name)
        deployment.stats.observe(elapsed, first_token)
        usage = last.usage if last is not None else None
        if usage is not None and usage.total_tokens:
            state.add_tokens(deployment.name, usage.total_tokens)
        self._report(deployment, "ok", elapsed)

    def _report(self, deployment: Deployment, outcome: str, elapsed: float, error: BaseException | None = None) -> None:
        if self.callbacks is not None:
            with scope(self.op):
                self.callbacks.attempt(AttemptEvent(self.current_group, deployment.name, outcome, elapsed, error))
            if self.attempt_op is not None:
                self.attempt_op.attributes["outcome"] = outcome
                finish(self.attempt_op, error)

    def failed(self, deployment: Deployment, started: float, error: LLMError) -> None:
        """Record a failed attempt; raise ``error`` when no other deployment should be tried."""
        router, state = self.router, self.state
        state.release(deployment.name)
        self._report(deployment, "error", time.monotonic() - started, error)
        self.attempts.append((deployment.name, error))
        if isinstance(error, RateLimitError):
            wait = error.retry_after if error.retry_after is not None else router.cooldown_seconds
            state.cool_down(deployment.name, wait)
        elif isinstance(error, APIConnectionError) or (
            isinstance(error, APIStatusError) and (error.status_code >= 500 or error.status_code == 408)
        ):
            state.cool_down(deployment.name, router.cooldown_seconds)
            if not deployment.llm.capabilities.replay_safe:
                raise error  # the call may have started billable work there: never sent again elsewhere
        elif isinstance(error, AuthenticationError | PermissionDeniedError | NotFoundError):
            if state.record_failure(deployment.name, router.failure_window) >= router.allowed_failures:
                state.cool_down(deployment.name, router.cooldown_seconds)
        elif isinstance(error, ContentFilterError) and router.content_policy_fallbacks.get(self.group):
            self._switch(router.content_policy_fallbacks[self.group])
        elif is_context_window_error(error) and router.context_window_fallbacks.get(self.group):
            self._switch(router.context_window_fallbacks[self.group])
        else:
            raise error  # the request itself is wrong (a 400, a validation failure): no deployment would do better

    def _switch(self, groups: list[str]) -> None:
        self.queue, self.groups = [], list(groups)

    def broken(self, deployment: Deployment, started: float, error: LLMError, received: str) -> StreamError:
        """A stream failed after chunks reached the caller: the error to raise, carrying what was received."""
        self.state.release(deployment.name)
        self.state.cool_down(deployment.name, self.router.cooldown_seconds)
        self._report(deployment, "stream-broken", time.monotonic() - started, error)
        message = f"router: the stream from deployment {deployment.name!r} broke after {len(received)} characters"
        return StreamError(f"{message}: {error}", received=received)

    def exhausted(self, received: str = "") -> LLMError:
        """The error when no deployment is left: to resume a broken stream (``received``), or to answer at all."""
        if received:
            message = f"router: no deployment could resume the broken answer of group {self.group!r}"
            return StreamError(message, received=received)
        tried = "; ".join(f"{name}: {type(error).__name__}: {error}" for name, error in self.attempts) or "none"
        wait = "" if self.retry_after is None else f"; the earliest becomes available in {self.retry_after:.1f} s"
        return NoDeploymentAvailableError(
            f"router: no deployment of group {self.group!r} (or its fallbacks) could answer. Tried: {tried}{wait}",
            group=self.group,
            attempts=self.attempts,
            retry_after=self.retry_after,
        )


class Router(WrapperLLM):
    """Routes each call to a deployment of a model group (see the module docstring).

    Args:
        groups: group name -> deployments (LLMs, or :class:`Deployment` for weights and limits).
        fallbacks: group -> groups tried, in order, when the group's deployments are exhausted.
        context_window_fallbacks / content_policy_fallbacks: where context-window and content-filter errors go.
        default_group: the group used when a call names none (default: the first).
        strategy: ``"weighted"``, ``"least-busy"``, ``"latency"``, ``"usage"`` or a callable
            ``(deployments, state) -> ordered deployments``.
        max_attempts: calls to deployments per routed call, fallbacks included.
        total_timeout: seconds after which no new attempt starts.
        cooldown_seconds: how long a failing deployment is skipped (429 uses the server's Retry-After).
        allowed_failures / failure_window: other failures that trip a deployment's breaker.
        stream_idle_timeout: seconds an async stream may wait for its next chunk.
        resume: when a stream breaks after chunks, continue it on another deployment from the text received (chat
            calls go only to deployments whose capabilities say ``assistant_prefill``); the caller sees one answer.
        redis_url / namespace: share limits, in-flight counts and cooldowns across processes.
        state: your own :class:`~llmkit.router.state.RouterState` (default: local, or Redis given ``redis_url``).
        window_seconds: the length of the rpm/tpm window (60).
    """

    llm: LLM = Field(default=None, exclude=True)  # type: ignore[assignment]  # set to the default group's first
    groups: dict[str, list[Deployment]] = Field(exclude=True)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    context_window_fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    content_policy_fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    default_group: str = ""
    strategy: Strategy | str = Field(default="weighted", exclude=True)
    max_attempts: int = Field(default=5, ge=1)
    total_timeout: float | None = Field(default=None, gt=0)
    cooldown_seconds: float = Field(default=30.0, ge=0)
    allowed_failures: int = Field(default=3, ge=1)
    failure_window: float = Field(default=60.0, gt=0)
    stream_idle_timeout: float | None = Field(default=None, gt=0)
    resume: bool = False
    redis_url: str | None = Field(default=None, exclude=True)
    namespace: str = "default"
    window_seconds: float = Field(default=60.0, gt=0)

    state: RouterState = Field(default=None, exclude=True)  # type: ignore[assignment]  # built by the validator

    @classmethod
    def class_name(cls) -> str:
        return "Router"

    @model_validator(mode="before")
    @classmethod
    def _deployments_from_llms(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("groups"), Mapping) or not data["groups"]:
            raise ConfigurationError("Router needs groups={'name': [llm, ...]} with at least one group")
        groups: dict[str, list[Deployment]] = {}
        seen: set[str] = set()
        for group, members in data["groups"].items():
            if not members:
                raise ConfigurationError(f"Router group {group!r} has no deployments")
            groups[group] = []
            for member in members:
                deployment = member if isinstance(member, Deployment) else Deployment(llm=member)
                if not deployment.name:
                    base = f"{group}/{deployment.llm.class_name()}/{deployment.llm.metadata.model_name}"
                    deployment.name = base
                    number = 2
                    while deployment.name in seen:
                        deployment.name, number = f"{base}#{number}", number + 1
                if deployment.name in seen:
                    raise ConfigurationError(f"Router: two deployments are named {deployment.name!r}")
                seen.add(deployment.name)
                groups[group].append(deployment)
        default = data.get("default_group") or next(iter(groups))
        return {**data, "groups": groups, "default_group": default, "llm": groups[default][0].llm}

    @model_validator(mode="after")
    def _check_and_build_state(self) -> Router:
        names = set(self.groups)
        for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for group, targets in getattr(self, kind).items():
                unknown = [name for name in [group, *targets] if name not in names]
                if unknown:
                    raise ConfigurationError(f"Router {kind} names unknown groups {unknown}; groups: {sorted(names)}")
        if self.default_group not in names:
            raise ConfigurationError(f"Router default_group {self.default_group!r} is not one of {sorted(names)}")
        if isinstance(self.strategy, str):
            if self.strategy not in STRATEGIES:
                raise ConfigurationError(f"Unknown strategy {self.strategy!r}; choose one of {sorted(STRATEGIES)}")
            self.strategy = STRATEGIES[self.strategy]
        if self.state is None:
            self._rebuild_runtime()
        return self

    #: The state (circuit breakers, limits) is runtime: a copy or an unpickled router starts with fresh local state,
    #: or reconnects to the same Redis namespace (and so shares it).
    _runtime_fields: ClassVar[frozenset[str]] = frozenset({"state"})

    def _rebuild_runtime(self) -> None:
        self.state = (
            LocalState(self.window_seconds)
            if self.redis_url is None
            else RedisState(self.redis_url, self.namespace, self.window_seconds)
        )

    # -- what the router offers: what every deployment of the default group offers --------------------------------

    def _deployments(self, group: str) -> list[Deployment]:
        if group not in self.groups:
            raise ConfigurationError(f"Router has no model group {group!r}; groups: {sorted(self.groups)}")
        return self.groups[group]

    def group_metadata(self, group: str) -> LLMMetadata:
        """What every deployment of ``group`` supports: the smallest context window and output, chat only if all."""
        every = [d.llm.metadata for d in self._deployments(group)]
        return LLMMetadata(
            context_window=min(m.context_window for m in every),
            num_output=min(m.num_output for m in every),
            is_chat_model=all(m.is_chat_model for m in every),
            is_function_calling_model=all(m.is_function_calling_model for m in every),
            model_name=group,
        )

    @property
    def metadata(self) -> LLMMetadata:
        return self.group_metadata(self.default_group)

    @property
    def capabilities(self) -> Capabilities:
        every = [d.llm.capabilities for d in self._deployments(self.default_group)]
        modes = frozenset.intersection(*(c.structured_modes for c in every)) - self._refused_modes
        return Capabilities(
            chat=any(c.chat for c in every),
            completion=any(c.completion for c in every),
            streaming=all(c.streaming for c in every),
            structured_modes=modes,
            tool_calling=all(c.tool_calling for c in every),
            vision=all(c.vision for c in every),
        )

    def refuse_structured_mode(self, mode: PydanticProgramMode) -> None:
        LLM.refuse_structured_mode(self, mode)  # the router's own view; each deployment keeps its own

    def close(self) -> None:
        for deployments in self.groups.values():
            for deployment in deployments:
                deployment.llm.close()

    async def aclose(self) -> None:
        for deployments in self.groups.values():
            for deployment in deployments:
                await deployment.llm.aclose()

    # -- the hooks ----------------------------------------------------------------------------------------------------

    def _plan(self, call: LLMCall) -> tuple[_Plan, LLMCall]:
        if "model" not in call.kwargs:
            return _Plan(self, self.default_group), call
        kwargs = dict(call.kwargs)
        group = kwargs.pop("model") or self.default_group
        self._deployments(group)
        return _Plan(self, group), LLMCall(call.endpoint, call.messages, call.prompt, call.formatted, kwargs)

    def _call(self, call: LLMCall) -> Response:
        plan, call = self._plan(call)
        try:
            while (deployment := plan.next()) is not None:
                started = time.monotonic()
                try:
                    with plan.scope():
                        response = plan.call_on(call, deployment).invoke(deployment.llm)
                except LLMError as error:
                    plan.failed(deployment, started, error)
                    continue
                plan.succeeded(deployment, started, None, response)
                plan.end()
                return response
            raise plan.exhausted()
        except BaseException as error:
            plan.end(error)
            raise

    async def _acall(self, call: LLMCall) -> Response:
        plan, call = self._plan(call)
        try:
            while (deployment := plan.next()) is not None:
                started = time.monotonic()
                try:
                    with plan.scope():
                        response = await plan.call_on(call, deployment).ainvoke(deployment.llm)
                except LLMError as error:
                    plan.failed(deployment, started, error)
                    continue
                except asyncio.CancelledError:
                    self.state.release(deployment.name)
                    raise
                plan.succeeded(deployment, started, None, response)
                plan.end()
                return response
            raise plan.exhausted()
        except BaseException as error:
            plan.end(error)
            raise

    def _continuation(self, call: LLMCall, received: str) -> LLMCall:
        """The call that continues an answer cut after ``received``: the text as a trailing assistant message (chat)
        or appended to the prompt (completion)."""
        if call.is_chat:
            prefill = ChatMessage(role=MessageRole.ASSISTANT, content=received)
            return LLMCall.chat([*call.messages, prefill], call.kwargs)
        return LLMCall.complete(call.prompt + received, True, call.kwargs)

    def _eligible(self, call: LLMCall, received: str) -> Callable[[Deployment], bool] | None:
        """Who may continue a broken chat answer: deployments that continue a trailing assistant message."""
        if not received or not call.is_chat:
            return None
        return lambda deployment: deployment.llm.capabilities.assistant_prefill

    def _open(self, plan: _Plan, call: LLMCall, received: str) -> _Opened:
        """A stream on the next deployment that sends a first chunk (failing over before it)."""
        attempt = self._continuation(call, received) if received else call
        while (deployment := plan.next(self._eligible(call, received))) is not None:
            started = time.monotonic()
            chunks: Iterator[Response] = iter(())
            try:
                with plan.scope():
                    chunks = plan.call_on(attempt, deployment).stream(deployment.llm)
                    first = next(chunks, None)
            except LLMError as error:
                _close(chunks)
                plan.failed(deployment, started, error)
                continue
            return _Opened(deployment, chunks, first, started)
        raise plan.exhausted(received)

    def _stream(self, call: LLMCall) -> Generator[Response, None, None]:
        plan, call = self._plan(call)
        try:
            yield from self._relay(plan, call)
        except GeneratorExit:  # the caller stopped reading: not a failure
            plan.end()
            raise
        except BaseException as error:
            plan.end(error)
            raise
        plan.end()

    def _relay(self, plan: _Plan, call: LLMCall) -> Generator[Response, None, None]:
        opened, received = self._open(plan, call, ""), ""
        while True:
            deployment, chunks, last, started = opened.deployment, opened.chunks, opened.first, opened.started
            first_token = time.monotonic() - started
            try:
                if last is not None:
                    yield _after(received, last)
                for last in chunks:
                    yield _after(received, last)
            except LLMError as error:
                so_far = received + (_text_of(last) if last else "")
                broken = plan.broken(deployment, started, error, so_far)
                if not self.resume:
                    raise broken from error
                opened, received = self._open(plan, call, so_far), so_far
                continue
            except GeneratorExit:
                self.state.release(deployment.name)
                raise
            finally:
                _close(chunks)
            plan.succeeded(deployment, started, first_token, last)
            return

    async def _aopen(self, plan: _Plan, call: LLMCall, received: str) -> _AOpened:
        attempt = self._continuation(call, received) if received else call
        while (deployment := plan.next(self._eligible(call, received))) is not None:
            started = time.monotonic()
            chunks: AsyncGenerator[Response, None] | None = None
            try:
                with plan.scope():
                    chunks = await plan.call_on(attempt, deployment).astream(deployment.llm)
                    first = await _next_chunk(chunks, self.stream_idle_timeout, deployment)
            except LLMError as error:
                if chunks is not None:
                    await chunks.aclose()
                plan.failed(deployment, started, error)
                continue
            return _AOpened(deployment, chunks, first, started)
        raise plan.exhausted(received)

    async def _astream(self, call: LLMCall) -> AsyncGenerator[Response, None]:
        plan, call = self._plan(call)
        try:
            opened = await self._aopen(plan, call, "")
        except BaseException as error:
            plan.end(error)
            raise
        relay = self._arelay(plan, call, opened)
        return relay if plan.op is None else self._aended(plan, relay)

    async def _aended(self, plan: _Plan, chunks: AsyncGenerator[Response, None]) -> AsyncGenerator[Response, None]:
        try:
            async for chunk in chunks:
                yield chunk
        except GeneratorExit:  # the caller stopped reading: not a failure
            plan.end()
            raise
        except BaseException as error:
            plan.end(error)
            raise
        finally:
            await chunks.aclose()
        plan.end()

    async def _arelay(self, plan: _Plan, call: LLMCall, opened: _AOpened) -> AsyncGenerator[Response, None]:
        received, idle = "", self.stream_idle_timeout
        while True:
            deployment, chunks, last, started = opened.deployment, opened.chunks, opened.first, opened.started
            first_token = time.monotonic() - started
            try:
                if last is not None:
                    yield _after(received, last)
                    while (chunk := await _next_chunk(chunks, idle, deployment)) is not None:
                        last = chunk
                        yield _after(received, chunk)
            except LLMError as error:
                so_far = received + (_text_of(last) if last else "")
                broken = plan.broken(deployment, started, error, so_far)
                if not self.resume:
                    raise broken from error
                opened, received = await self._aopen(plan, call, so_far), so_far
                continue
            except (GeneratorExit, asyncio.CancelledError):
                self.state.release(deployment.name)
                raise
            finally:
                await chunks.aclose()
            plan.succeeded(deployment, started, first_token, last)
            return


@dataclass(slots=True)
class _Opened:
    deployment: Deployment
    chunks: Iterator[Response]
    first: Response | None
    started: float


@dataclass(slots=True)
class _AOpened:
    deployment: Deployment
    chunks: AsyncGenerator[Response, None]
    first: Response | None
    started: float


def _after(received: str, chunk: Response) -> Response:
    """A chunk of a resumed answer, its text following what the caller already received (as is, when nothing was)."""
    if not received:
        return chunk
    if isinstance(chunk, ChatResponse):
        message = text_message(received + (chunk.message.content or ""), chunk.message.additional_kwargs)
        return chunk.model_copy(update={"message": message})
    return chunk.model_copy(update={"text": received + chunk.text})


def _close(chunks: Iterator[Response]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


async def _next_chunk(
    chunks: AsyncGenerator[Response, None], idle: float | None, deployment: Deployment
) -> Response | None:
    """The next chunk, or None at the end; a stall longer than ``idle`` seconds is an APITimeoutError."""
    from llmkit.errors import APITimeoutError

    try:
        if idle is None:
            return await anext(chunks)
        return await asyncio.wait_for(anext(chunks), idle)
    except StopAsyncIteration:
        return None
    except TimeoutError as exc:
        raise APITimeoutError(
            f"router: deployment {deployment.name!r} sent nothing for {idle} s (stream_idle_timeout)"
        ) from exc


ROUTING_KEYS = ("name", "weight", "rpm", "tpm", "max_parallel")


def load_config(source: str | Path | Mapping[str, Any]) -> Router:
    """A router from a config file (``.toml`` or ``.json``) or mapping, the format the gateway shares:

    ``{"groups": {"fast": [{"model": "openai-like/smollm2", "api_base": "...", "weight": 2, "rpm": 60}]},
    "fallbacks": {...}, "strategy": "latency", ...}``. Each deployment's ``model`` is a :func:`llmkit.create` spec;
    ``name``, ``weight``, ``rpm``, ``tpm`` and ``max_parallel`` configure the deployment, the other keys go to
    ``create``.
    """
    from llmkit.registry import create

    config = _read_config(source) if isinstance(source, str | Path) else source
    groups: dict[str, list[Deployment]] = {}
    for group, entries in dict(config.get("groups") or {}).items():
        groups[group] = []
        for entry in entries:
            settings = dict(entry)
            if "model" not in settings:
                raise ConfigurationError(f"Router config: a deployment of group {group!r} has no 'model' spec")
            routing = {key: settings.pop(key) for key in ROUTING_KEYS if key in settings}
            groups[group].append(Deployment(llm=create(settings.pop("model"), **settings), **routing))
    return Router(**{**config, "groups": groups})



def _read_config(path: str | Path) -> Mapping[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"Router config {path} cannot be read: {exc}") from exc
    try:
        if path.suffix == ".json":
            loaded: Mapping[str, Any] = json.loads(text)
        else:
            loaded = tomllib.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ConfigurationError(f"Router config {path} is not valid {path.suffix[1:] or 'TOML'}: {exc}") from exc
    return loaded
