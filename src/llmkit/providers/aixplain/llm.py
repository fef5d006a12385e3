"""aiXplain's LLM: the SDK's ``run``/``run_async``/``poll`` API, wire-identical to ``aixplain`` 0.2.48, and llmkit's
unified chat/complete interface on the same calls.

Two faces, two error styles:

* ``run``, ``run_async``, ``poll`` and ``sync_poll`` behave like the SDK: a failure comes back as a ``FAILED``
  :class:`ModelResponse` with the SDK's ``error_message`` (and llmkit adds ``response.exception``, the cause);
* ``chat``, ``complete`` and their stream/async forms raise llmkit's typed errors, and map messages the SDK's way:
  the system message to ``context``, earlier turns to ``history``, the last message to ``data``.

Everywhere seed 003 is silent, the released SDK (``aixplain`` 0.2.48) is the reference: its error texts, its
reading of odd bodies, ``top_p`` sent only when given (the signature's 1.0 stands for "not given"), ``response_format``,
the ``supports_streaming`` gate, ``ModelResponse`` item assignment, and ``run``/``sync_poll`` going through the public
:meth:`AiXplainLLM.poll` (patchable with ``mock.patch.object``, overridable in a subclass).
``tests/providers/test_aixplain_differential.py`` compares both, call for call; its ``ALLOWED_DIFFERENCES`` table
lists every departure. Where the SDK is wrong, llmkit does it right (``shared/protocols/gradient-and-aixplain.md``,
B.8-B.11):

* polling stops on a 4xx answer instead of spinning until the timeout; a 5xx poll is retried (a GET is safe), then
  stops with the status's text;
* every request has an HTTP timeout (the SDK waits forever on a silent server);
* a stream's HTTP status is checked; ``data:`` with or without a space and OpenAI-style chunks are read, and the
  prefix is taken off the line start only; an error event ends the stream ``FAILED``;
* an ``error_code`` in a body is reported, not a crash;
* the API key is only sent to the configured host or an aiXplain host, never to a foreign poll URL;
* a ``data`` string naming a local file is sent as text, not uploaded;
* replay safety: the run POST (a job start) is never re-sent after an ambiguous failure (5xx, 408, 409, a timeout or
  a reset), since the job may already run and bill; a 429 or a failed connect is retried (nothing started); polls
  are retried as any GET;
* a model that does not stream is refused with a :class:`~llmkit.errors.ConfigurationError` naming the fix (the SDK
  raises a bare ``AssertionError``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from llmkit.capabilities import Capabilities
from llmkit.errors import (
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    JobFailedError,
    LLMError,
    ResponseParseError,
    StreamError,
)
from llmkit.providers.aixplain.payload import build_payload, serialise
from llmkit.providers.aixplain.response import (
    GENERIC_RUN_ERROR,
    NO_RESPONSE,
    ModelResponse,
    ResponseStatus,
    failed,
    status_error_text,
)
from llmkit.providers.aixplain.stream import ModelResponseStreamer, StreamEvent, content_text, parse_line
from llmkit.providers.base import HTTPLLM, call_options
from llmkit.transport import PollSchedule, PollTimeout, Request, poll
from llmkit.transport.errors import TextBody
from llmkit.transport.flow import Flow, arun_flow, run_flow
from llmkit.types import ChatMessage, ChatResponse, LLMMetadata, MessageRole, Usage, text_message

DEFAULT_RUN_URL = "https://models.aixplain.com/api/v1/execute"
DEFAULT_BACKEND_URL = "https://platform-api.aixplain.com"
_V1, _V2 = "/api/v1/execute", "/api/v2/execute"
_LOOPBACK_NAMES = {"localhost"}
#: Per-call keywords of the unified interface (``timeout``/``max_retries`` are the transport's, as everywhere).
CALL_KEYWORDS = {"temperature", "max_tokens", "top_p", "prompt", "parameters", "poll_timeout", "wait_time"}


class Function(StrEnum):
    """aiXplain AI functions (an LLM must be ``TEXT_GENERATION``)."""

    TEXT_GENERATION = "text-generation"
    TRANSLATION = "translation"
    SPEECH_RECOGNITION = "speech-recognition"
    TEXT_EMBEDDING = "text-embedding"
    SPEECH_SYNTHESIS = "speech-synthesis"


class FunctionType(StrEnum):
    """Kinds of aiXplain assets."""

    AI = "ai"
    SEGMENTOR = "segmentor"
    RECONSTRUCTOR = "reconstructor"
    UTILITY = "utility"
    METRIC = "metric"
    SEARCH = "search"
    INTEGRATION = "integration"
    CONNECTION = "connection"


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _api_key_from_env() -> SecretStr | None:
    team, alias = _env("TEAM_API_KEY"), _env("AIXPLAIN_API_KEY")
    if team and alias and team != alias:
        raise ConfigurationError("TEAM_API_KEY and AIXPLAIN_API_KEY are both set, to different keys: keep one")
    key = team or alias
    return SecretStr(key) if key else None


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_aixplain_host(host: str) -> bool:
    return host == "aixplain.com" or host.endswith(".aixplain.com")


def check_url(url: str, what: str) -> str:
    """A service URL: https without credentials (http only on loopback, or with AIXPLAIN_ALLOW_INSECURE_URLS=1)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigurationError(f"{what} must be an http(s) URL, not {url!r}")
    if parts.username or parts.password:
        raise ConfigurationError(f"{what} must not contain credentials")
    insecure_ok = _env("AIXPLAIN_ALLOW_INSECURE_URLS") == "1" or _is_loopback(host)
    if parts.scheme == "http" and not insecure_ok:
        raise ConfigurationError(f"{what} must use https (set AIXPLAIN_ALLOW_INSECURE_URLS=1 to allow http)")
    return url.rstrip("/")


class _SignatureTopP(float):
    """The type of :data:`DEFAULT_TOP_P`."""


#: ``top_p``'s default in ``run``/``run_async`` (1.0, seed 003's signature) stands for "not given": like the SDK's
#: unset ``top_p`` it is left out of the body, while an explicit ``top_p=1.0`` is sent, as the SDK sends it.
DEFAULT_TOP_P: float = _SignatureTopP(1.0)


def _sent_top_p(top_p: float | None) -> float | None:
    return None if top_p is None or isinstance(top_p, _SignatureTopP) else top_p


def _usage(usage: Any, credits: Any = None) -> Usage | None:
    """Tokens as reported, and the credits the run used (aiXplain bills in credits: they stay credits, never USD)."""
    has_credits = isinstance(credits, int | float) and not isinstance(credits, bool)
    if not isinstance(usage, dict):
        return Usage(credits=float(credits)) if has_credits else None
    return Usage(
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        total_tokens=usage.get("total_tokens"),
        credits=float(credits) if has_credits else None,
    )


_HISTORY_ROLES = {MessageRole.CHATBOT: "assistant", MessageRole.MODEL: "assistant"}


def messages_to_run(messages: Sequence[ChatMessage]) -> dict[str, Any]:
    """``data`` (the last message), ``context`` (the system messages) and ``history`` (the turns before)."""
    if not messages:
        raise ConfigurationError("chat needs at least one message")
    system = [m.content or "" for m in messages if m.role in (MessageRole.SYSTEM, MessageRole.DEVELOPER)]
    turns = [m for m in messages if m.role not in (MessageRole.SYSTEM, MessageRole.DEVELOPER)]
    if not turns:
        raise ConfigurationError("chat needs a user message after the system message")
    history = [{"role": _HISTORY_ROLES.get(m.role, m.role.value), "content": m.content or ""} for m in turns[:-1]]
    return {
        "data": turns[-1].content or "",
        "context": "\n\n".join(system) if system else None,
        "history": history or None,
    }


class AiXplainLLM(HTTPLLM):
    """An aiXplain-hosted LLM.

    Args:
        id: the model's id. name: its name. description, supplier, version, is_subscribed, cost,
        function_type, additional_info: the asset's metadata, kept as given.
        api_key: else ``TEAM_API_KEY`` / ``AIXPLAIN_API_KEY``.
        function: must be ``Function.TEXT_GENERATION`` (or None).
        temperature: the default temperature sent with every run (None: leave it to the service).
        url / backend_url: else ``MODELS_RUN_URL`` / ``BACKEND_URL`` (defaults: aiXplain's services).
        timeout: seconds per HTTP request (connect capped at 10 s); ``poll_timeout`` bounds a whole job.

    Example:
        >>> llm = AiXplainLLM("6646261c6eb563165658bbb1", "GPT-4o", api_key="team-key")
        >>> llm.metadata.model_name
        '6646261c6eb563165658bbb1'
    """

    _derived_from_fields: ClassVar[bool] = True

    id: str = Field(description="ID of the Model.")
    name: str = Field(description="Name of the Model.")
    description: str = Field(default="", description="Description of the model.")
    api_key: SecretStr | None = Field(default=None, description="API key of the Model.")
    #: A pickle never holds the key: one from the environment is read from it again when the pickle is loaded.
    _secret_env: ClassVar[dict[str, tuple[str, ...]]] = {"api_key": ("TEAM_API_KEY", "AIXPLAIN_API_KEY")}
    supplier: Any = Field(default="aiXplain", description="Supplier of the asset.")
    version: str | None = Field(default=None, description="Version of the model.")
    function: Function | None = Field(default=None, description="Model AI function (text generation).")
    is_subscribed: bool = Field(default=False, description="Whether the user is subscribed.")
    cost: dict[str, Any] | None = Field(default=None, description="Model price.")
    temperature: float | None = Field(default=0.001, description="Default temperature for text generation.")
    function_type: FunctionType | None = Field(default=FunctionType.AI, description="Type of the function.")
    url: str = Field(default_factory=lambda: _env("MODELS_RUN_URL") or DEFAULT_RUN_URL, description="Run URL.")
    backend_url: str = Field(
        default_factory=lambda: _env("BACKEND_URL") or DEFAULT_BACKEND_URL, description="URL of the backend."
    )
    additional_info: dict[str, Any] = Field(default_factory=dict, description="Any additional model info.")
    supports_streaming: bool = Field(
        default=False, description="Whether the model streams (the SDK's default: False; run(stream=True) needs it)."
    )
    max_tokens: int = Field(default=128, gt=0, description="Tokens to generate in chat/complete.")
    poll_timeout: float = Field(
        default=300.0, gt=0, description="Seconds a chat/complete job may take, polls included."
    )
    wait_time: float = Field(default=0.5, gt=0, description="First wait between polls, in seconds (grows x1.1).")

    def __init__(
        self,
        id: str,
        name: str,
        description: str = "",
        api_key: str | SecretStr | None = None,
        supplier: Any = "aiXplain",
        version: str | None = None,
        function: Function | str | None = None,
        is_subscribed: bool = False,
        cost: dict[str, Any] | None = None,
        temperature: float | None = 0.001,
        function_type: FunctionType | str | None = FunctionType.AI,
        **additional_info: Any,
    ) -> None:
        # llmkit's own settings (timeout, max_retries, url, system_prompt, ...) are fields; the rest is asset info.
        settings = {key: additional_info.pop(key) for key in list(additional_info) if key in type(self).model_fields}
        fields: dict[str, Any] = {
            "id": id,
            "name": name,
            "description": description,
            "api_key": api_key,
            "supplier": supplier,
            "version": version,
            "function": function,
            "is_subscribed": is_subscribed,
            "cost": cost,
            "temperature": temperature,
            "function_type": function_type,
            "additional_info": {**settings.pop("additional_info", {}), **additional_info},
        }
        super().__init__(**fields, **settings)
        if self.api_key is None:
            self.api_key = _api_key_from_env()
        if self.api_key is None:
            raise ConfigurationError(
                "aiXplain needs an API key: pass api_key= or set TEAM_API_KEY (or AIXPLAIN_API_KEY)"
            )
        self.url = check_url(self.url, "MODELS_RUN_URL")
        self.backend_url = check_url(self.backend_url, "BACKEND_URL")

    def __setattr__(self, name: str, value: Any) -> None:
        # An instance may replace one of its public methods (``unittest.mock.patch.object(llm, "poll")``, as SDK
        # users' tests do); pydantic would refuse a name that is not a field.
        if (
            not name.startswith("_")
            and name not in type(self).model_fields
            and callable(getattr(type(self), name, None))
        ):
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    @field_validator("function", mode="before")
    @classmethod
    def _text_generation_only(cls, value: Any) -> Any:
        if value is not None and Function(value) is not Function.TEXT_GENERATION:
            raise ValueError(f"an aiXplain LLM's function must be text-generation, not {Function(value).value!r}")
        return value

    @classmethod
    def class_name(cls) -> str:
        return "aixplain_llm"

    def _provider_name(self) -> str:
        return "aixplain"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(num_output=self.max_tokens, is_chat_model=True, model_name=self.id)

    def _capabilities(self) -> Capabilities:
        # A run starts a billable job; a model that does not stream answers a stream call as one chunk.
        return Capabilities(chat=True, streaming=self.supports_streaming, replay_safe=False)

    def _transport_settings(self) -> dict[str, Any]:
        assert self.api_key is not None  # checked at construction
        headers = {"x-api-key": self.api_key.get_secret_value(), "Content-Type": "application/json"}
        return {"base_url": self.url, "headers": headers, "provider": "aixplain"}

    # -- endpoints -------------------------------------------------------------------------------------------------

    @property
    def run_url(self) -> str:
        """Where ``run`` and streams go: the v2 execute endpoint."""
        return f"{self.url.replace(_V1, _V2)}/{self.id}"

    @property
    def run_async_url(self) -> str:
        """Where ``run_async`` goes: the v1 execute endpoint."""
        return f"{self.url}/{self.id}"

    def _run_request(self, url: str, payload: dict[str, Any]) -> Request:
        # A job start is never re-sent after an ambiguous failure (5xx, 408, 409, a timeout or a reset): it may
        # already run, and bill, on the service. A 429 or a failed connect is replayed (nothing was started).
        return Request("POST", url, content=serialise(payload), replay_safe=False)

    def _poll_request(self, poll_url: Any) -> Request:
        if not isinstance(poll_url, str):
            raise ResponseParseError(
                f"aiXplain returned a poll URL that is not a string: {poll_url!r}", body=poll_url, provider="aixplain"
            )
        parts = urlsplit(poll_url)
        host = parts.hostname or ""
        own_host = urlsplit(self.url).hostname
        if parts.scheme not in ("http", "https") or not (host == own_host or _is_aixplain_host(host)):
            raise ResponseParseError(
                f"aiXplain returned a poll URL on a foreign host ({host or poll_url!r}); "
                "llmkit does not send the API key there",
                body=poll_url,
                provider="aixplain",
            )
        return Request("GET", poll_url)

    # -- reading answers -------------------------------------------------------------------------------------------

    @staticmethod
    def _read_start(body: Any, *, aliases: bool = True) -> ModelResponse:
        """A run's answer: a direct result (its ``status`` as sent), or an in-progress job with its poll URL (B.6);
        ``aliases=False`` is ``run_async``'s reading (``usedCredits``/``runTime`` stay additional fields)."""
        if not isinstance(body, dict):
            raise ResponseParseError(
                f"aiXplain's run answer is not an object: {body!r}", body=body, provider="aixplain"
            )
        status = body.get("status", "IN_PROGRESS")
        if status == "IN_PROGRESS":
            if body.get("data") is None:
                raise ResponseParseError(
                    "aiXplain answered IN_PROGRESS without a poll URL", body=body, provider="aixplain"
                )
            return ModelResponse(status=ResponseStatus.IN_PROGRESS, url=body["data"], completed=False)
        return ModelResponse.from_body(body, status=status, aliases=aliases)

    @staticmethod
    def _read_poll(body: Any) -> ModelResponse:
        """A poll's answer. One without ``completed`` (or not an object) is FAILED and not completed, with the
        words of the failed lookup as its message, exactly as the SDK reads it; a caller polls on."""
        try:
            body["completed"]
        except (KeyError, TypeError, IndexError) as exc:
            return failed(str(exc), completed=False, exception=exc)
        return ModelResponse.from_body(body)

    @staticmethod
    def _done(response: ModelResponse) -> bool:
        return response.completed is True

    # -- the job, sync and async: start, then poll until done (typed errors) ---------------------------------------

    def _job(
        self, payload: dict[str, Any], poll_timeout: float, wait_time: float, options: dict[str, Any]
    ) -> Flow[ModelResponse]:
        """The job, written once: start it, then poll with growing waits until it is done or ``poll_timeout`` (from
        the start) passes. The start is never replayed after an ambiguous failure (``replay_safe=False``)."""
        start = time.monotonic()
        run = self._run_request(self.run_url, payload)
        started = self._read_start((yield run, {**self._start_timeout(poll_timeout), **options}))
        if started.url is None or started.completed:
            return started
        next_wait = PollSchedule(wait=wait_time).waits()
        while True:
            polled = self._read_poll((yield self._poll_request(started.url), options))
            if self._done(polled):
                return polled
            if time.monotonic() - start >= poll_timeout:
                raise self._job_timeout(started.url, poll_timeout)
            yield next_wait()

    @staticmethod
    def _job_timeout(poll_url: str, timeout: float) -> APITimeoutError:
        return APITimeoutError(
            f"aiXplain: the job did not finish within {timeout:g} s (poll URL {poll_url})", provider="aixplain"
        )

    def _start_timeout(self, timeout: float) -> dict[str, Any]:
        # A direct answer can take as long as the whole job, so the run request may read for that long.
        return {"timeout": max(timeout, self.timeout or 0.0)}

    # -- the SDK's API ---------------------------------------------------------------------------------------------

    def _sdk_payload(
        self,
        data: Any,
        context: str | None,
        prompt: str | None,
        history: list[dict[str, Any]] | None,
        temperature: float | None,
        max_tokens: int,
        top_p: float | None,
        parameters: dict[str, Any] | None,
        response_format: Any,
        stream: bool = False,
    ) -> dict[str, Any]:
        return build_payload(
            data,
            context=context,
            prompt=prompt,
            history=history,
            temperature=temperature,
            default_temperature=self.temperature,
            max_tokens=max_tokens,
            top_p=_sent_top_p(top_p),
            parameters=parameters,
            response_format=response_format,
            stream=stream,
        )

    def run(
        self,
        data: Any,
        context: str | None = None,
        prompt: str | None = None,
        history: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int = 128,
        top_p: float = DEFAULT_TOP_P,
        name: str = "model_process",
        timeout: float = 300,
        parameters: dict[str, Any] | None = None,
        wait_time: float = 0.5,
        stream: bool = False,
        response_format: Any = None,
    ) -> ModelResponse | ModelResponseStreamer:
        """Run the LLM: the finished :class:`ModelResponse`, or with ``stream=True`` a :class:`ModelResponseStreamer`.

        Sent to the v2 endpoint; a direct answer is returned as is, a poll URL is handed to :meth:`sync_poll`
        (which calls :meth:`poll`, so a subclass or a patch of either is used). Failures come back as ``FAILED``
        responses. ``top_p`` is sent only when given; ``response_format`` goes into the body as is.

        Example:
            >>> response = llm.run("Hello", context="You are helpful", max_tokens=64)  # doctest: +SKIP
            >>> response["data"], response.status  # doctest: +SKIP
            ('Hi! How can I help?', <ResponseStatus.SUCCESS: 'SUCCESS'>)
        """
        if stream and not self.supports_streaming:
            raise ConfigurationError(
                f"Model '{self.name} ({self.id})' does not support streaming; "
                "construct it with supports_streaming=True if it does"
            )
        payload = self._sdk_payload(
            data, context, prompt, history, temperature, max_tokens, top_p, parameters, response_format, stream
        )
        request = self._run_request(self.run_url, payload)
        if stream:
            try:
                response = self.transport.send(request, stream=True, **self._start_timeout(timeout))
            except LLMError as exc:
                return ModelResponseStreamer(iter(()), failure=self._failure(exc))
            return ModelResponseStreamer(self.transport.lines(response), on_close=response.close)
        try:
            started = self._read_start(self.transport.request_json(request, **self._start_timeout(timeout)))
        except LLMError as exc:
            return self._failure(exc)
        if started.status is not ResponseStatus.IN_PROGRESS:
            return started
        try:
            return self.sync_poll(started.url, name=name, timeout=timeout, wait_time=wait_time)
        except Exception as exc:  # a sync_poll override that raises: the SDK reports it as a FAILED run
            return failed(f"Error in request for {name} - {type(exc).__name__}: {exc}", exception=exc)

    def run_async(
        self,
        data: Any,
        context: str | None = None,
        prompt: str | None = None,
        history: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int = 128,
        top_p: float = DEFAULT_TOP_P,
        name: str = "model_process",
        parameters: dict[str, Any] | None = None,
        response_format: Any = None,
    ) -> ModelResponse:
        """Start a job on the v1 endpoint; the ``IN_PROGRESS`` response's ``url`` is where to :meth:`poll`."""
        payload = self._sdk_payload(
            data, context, prompt, history, temperature, max_tokens, top_p, parameters, response_format
        )
        try:
            body = self.transport.request_json(self._run_request(self.run_async_url, payload))
            return self._read_start(body, aliases=False)
        except LLMError as exc:
            return self._failure(exc)

    def poll(self, poll_url: str, name: str = "model_process") -> ModelResponse:
        """Check a job once.

        An answer without ``completed``, or one that is not JSON, is ``FAILED`` but not completed (the SDK's
        reading: whoever polls asks again). An HTTP error status is ``FAILED`` and completed, so polling stops.
        A request that could not be made raises (a typed llmkit error), as the SDK's ``poll`` raises.
        """
        request = self._poll_request(poll_url)
        try:
            response = self.transport.send(request)
        except APIStatusError as exc:
            return self._failure(exc)
        try:
            body = json.loads(response.content)  # the SDK's decoder: its words when the answer is not JSON
        except ValueError as exc:
            excerpt = response.content[:200].decode("utf-8", errors="replace")
            error = ResponseParseError(
                f"{self.transport.provider} answered a poll with a body that is not JSON: {excerpt!r}",
                body=excerpt,
                provider=self.transport.provider,
            )
            return failed(str(exc), completed=False, exception=error)
        return self._read_poll(body)

    def sync_poll(
        self, poll_url: str, name: str = "model_process", wait_time: float = 0.5, timeout: float = 300
    ) -> ModelResponse:
        """Call :meth:`poll` until the job is completed or ``timeout`` seconds pass (then ``FAILED``, "No response
        from the service."); waits start at ``wait_time`` (at least 0.2 s) and grow x1.1 with +/-20% jitter."""
        try:
            response: Any = poll(
                lambda: self.poll(poll_url, name=name),
                lambda answer: bool(answer["completed"]),
                timeout=timeout,
                schedule=PollSchedule(wait=wait_time),
            )
        except PollTimeout:
            return failed(NO_RESPONSE, completed=False)
        except Exception as exc:  # the SDK ends polling on any error; the cause is kept on the response
            return failed(NO_RESPONSE, completed=False, exception=exc)
        if response["completed"] is True:
            return response  # type: ignore[no-any-return]
        return failed(NO_RESPONSE, completed=False)

    @staticmethod
    def _failure(exc: LLMError) -> ModelResponse:
        """The SDK's FAILED response for an error, with the error kept in ``response.exception``."""
        if isinstance(exc, APIStatusError):
            text = status_error_text(exc.status_code, exc.body, is_json=not isinstance(exc.body, TextBody))
            return failed(text, exception=exc)
        return failed(GENERIC_RUN_ERROR, exception=exc)

    # -- the unified interface -------------------------------------------------------------------------------------

    def _chat_payload(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - CALL_KEYWORDS)
        if unknown:
            raise ConfigurationError(
                f"aiXplain does not take {', '.join(map(repr, unknown))}; "
                f"the supported keywords are {', '.join(sorted(CALL_KEYWORDS | {'timeout', 'max_retries'}))}"
            )
        run = messages_to_run(messages)
        return build_payload(
            run["data"],
            context=run["context"],
            history=run["history"],
            prompt=kwargs.get("prompt"),
            temperature=kwargs.get("temperature"),
            default_temperature=self.temperature,
            max_tokens=kwargs.get("max_tokens") or self.max_tokens,
            top_p=kwargs.get("top_p"),
            parameters=kwargs.get("parameters"),
            stream=stream,
            parse_json=False,
        )

    def _job_settings(self, kwargs: dict[str, Any]) -> tuple[float, float]:
        return float(kwargs.get("poll_timeout") or self.poll_timeout), float(kwargs.get("wait_time") or self.wait_time)

    def _to_chat(self, response: ModelResponse) -> ChatResponse:
        if response.status is not ResponseStatus.SUCCESS:
            raise JobFailedError(
                f"aiXplain: the run failed: {response.error_message or 'no error message'}"
                + (f" (error code {response.error_code})" if response.error_code else ""),
                error_code=response.error_code,
                response=response.to_dict(),
                provider="aixplain",
            )
        extra = {"used_credits": response.used_credits, "run_time": response.run_time}
        if "requestId" in response.additional_fields:
            extra["request_id"] = response.additional_fields["requestId"]
        return ChatResponse(
            message=text_message(content_text(response.data)),
            raw=response.to_dict(),
            usage=_usage(response.usage, response.used_credits),
            additional_kwargs=extra,
        )

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        options = call_options(kwargs)
        payload = self._chat_payload(messages, kwargs, stream=False)
        return self._to_chat(run_flow(self.transport, self._job(payload, *self._job_settings(kwargs), options)))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        options = call_options(kwargs)
        payload = self._chat_payload(messages, kwargs, stream=False)
        return self._to_chat(await arun_flow(self.transport, self._job(payload, *self._job_settings(kwargs), options)))

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[ChatResponse]:
        if not self.supports_streaming:  # the model does not stream: its whole answer is the one chunk
            whole = self._chat(messages, **kwargs)
            yield whole.model_copy(update={"delta": whole.message.content or ""})
            return
        options = call_options(kwargs)
        request = self._run_request(self.run_url, self._chat_payload(messages, kwargs, stream=True))
        lines = self.transport.stream_lines(request, **options)
        state = _StreamState()
        try:
            for line in lines:
                chunk = state.feed(parse_line(line))
                if chunk is not None:
                    yield chunk
                if state.done:
                    return
        except StreamError as exc:
            exc.received = state.text
            raise
        finally:
            lines.close()

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        if not self.supports_streaming:
            whole = await self._achat(messages, **kwargs)
            yield whole.model_copy(update={"delta": whole.message.content or ""})
            return
        options = call_options(kwargs)
        request = self._run_request(self.run_url, self._chat_payload(messages, kwargs, stream=True))
        lines = self.transport.astream_lines(request, **options)
        state = _StreamState()
        try:
            async for line in lines:
                chunk = state.feed(parse_line(line))
                if chunk is not None:
                    yield chunk
                if state.done:
                    return
        except StreamError as exc:
            exc.received = state.text
            raise
        finally:
            await lines.aclose()


class _StreamState:
    """Turns stream events into chat chunks, keeping the text so far (for a :class:`StreamError`'s ``received``)."""

    def __init__(self) -> None:
        self.text = ""
        self.done = False

    def feed(self, event: StreamEvent | None) -> ChatResponse | None:
        if event is None:
            return None
        if event.error is not None:
            raise StreamError(
                f"aiXplain reported an error mid-stream: {event.error}", received=self.text, provider="aixplain"
            )
        self.done = event.done
        if not (event.text or event.usage or event.used_credits is not None):
            return None
        self.text += event.text
        extra = {"used_credits": event.used_credits} if event.used_credits is not None else {}
        return ChatResponse(
            message=text_message(self.text),
            delta=event.text,
            usage=_usage(event.usage, event.used_credits),
            additional_kwargs=extra,
        )


def from_spec(model_id: str, **kwargs: Any) -> AiXplainLLM:
    """``create("aixplain/MODEL_ID")`` (``name`` defaults to the id)."""
    kwargs.setdefault("name", model_id)
    return AiXplainLLM(model_id, **kwargs)
