"""BaseLLM and LLM: the whole public API, written once on top of a provider's primitives.

A provider implements the primitives it natively has — the chat family (``_chat``, and optionally ``_stream_chat``,
``_achat``, ``_astream_chat``) and/or the completion family (``_complete`` and friends) — plus ``metadata``.
:class:`LLM` builds everything else: the other family, streaming from one-shot and async from sync where the provider
has no native form, the system prompt and prompt transforms (applied once, here), callbacks, prediction from
templates, structured output and tool calling.

Example:
    >>> from llmkit import ScriptedLLM, ChatMessage
    >>> llm = ScriptedLLM(responses=["Hello!"])
    >>> llm.chat([ChatMessage(role="user", content="Hi")]).content
    'Hello!'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import copy
import operator
import os
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol, Self, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from llmkit._steps import arun_steps, run_steps
from llmkit.callbacks import CallbackManager, LLMEvent, operation
from llmkit.callbacks import _current as _CURRENT
from llmkit.capabilities import Capabilities
from llmkit.errors import ConfigurationError, InputError, SerializationError, ToolCallError, configuration_error
from llmkit.prompts import BasePromptTemplate
from llmkit.prompts import completion_to_prompt as default_completion_to_prompt
from llmkit.prompts import messages_to_prompt as default_messages_to_prompt
from llmkit.structured import (
    DEFAULT_MAX_REASKS,
    FlexibleModel,
    PydanticProgramMode,
    aiter_partials,
    iter_partials,
    stream_request,
    structured_steps,
)
from llmkit.tools import BaseTool, ToolSelection
from llmkit.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
    TextBlock,
    Usage,
    as_messages,
    chat_to_completion,
    completion_to_chat,
)

if TYPE_CHECKING:
    from llmkit.cache import Cache, CachedLLM
    from llmkit.structured_llm import StructuredLLM
    from llmkit.tools import AgentChatResponse

Model = TypeVar("Model")
R = TypeVar("R", ChatResponse, CompletionResponse)
T = TypeVar("T")

ChatResponseGen = Generator[ChatResponse, None, None]
CompletionResponseGen = Generator[CompletionResponse, None, None]
ChatResponseAsyncGen = AsyncGenerator[ChatResponse, None]
CompletionResponseAsyncGen = AsyncGenerator[CompletionResponse, None]
TokenGen = Generator[str, None, None]
TokenAsyncGen = AsyncGenerator[str, None]


class BaseOutputParser(Protocol):
    """Parses (and optionally formats prompts for) the model's text output."""

    def parse(self, output: str) -> Any: ...

    def format(self, query: str) -> str: ...


_NONE_MEANS_DEFAULT = ("callback_manager", "messages_to_prompt", "completion_to_prompt")

CallbackManagerField = Annotated[CallbackManager, WithJsonSchema({})]

_SENTINEL_DONE = object()


class _NoPrompt(str):
    """The default of ``prompt``: a call without one is a ``ValueError`` (as in LlamaIndex), not a ``TypeError``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<required>"


NO_PROMPT: str = _NoPrompt()


def require_prompt(prompt: str) -> str:
    """The prompt of a completion call; :class:`~llmkit.errors.InputError` (a ``ValueError``) when none was given."""
    if prompt is NO_PROMPT or type(prompt) is _NoPrompt:
        raise InputError("No prompt provided in positional or keyword arguments: complete(prompt)")
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be a str, not {type(prompt).__name__}; for messages use chat()")
    return prompt


def as_template(prompt: BasePromptTemplate | str, prompt_args: dict[str, Any]) -> BasePromptTemplate:
    """The prompt of ``predict``/``structured_predict``: a template, or a ``str`` (a template when arguments are
    given, else literal text)."""
    if isinstance(prompt, BasePromptTemplate):
        return prompt
    if isinstance(prompt, str):
        from llmkit.prompts import PromptTemplate

        literal = prompt.replace("{", "{{").replace("}", "}}")  # no arguments: braces are text (JSON examples)
        return PromptTemplate(prompt if prompt_args else literal)
    raise InputError(f"prompt must be a PromptTemplate (or a str), not {type(prompt).__name__}")


class BaseLLM(BaseModel, ABC):
    """The abstract interface every LLM offers: chat and completion, each sync, streamed, async and async-streamed."""

    # Unknown keywords are errors (a misspelled ``temprature`` or a foreign ``base_url`` must not vanish), and so are
    # NaN and infinity in any number.
    model_config = ConfigDict(
        arbitrary_types_allowed=True,
        validate_assignment=False,
        protected_namespaces=(),
        extra="forbid",
        allow_inf_nan=False,
    )

    callback_manager: CallbackManagerField = Field(default_factory=CallbackManager, exclude=True)

    #: Secret fields that may come from the environment: field -> the variables read (first set wins).
    _secret_env: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Private attributes worth keeping in a pickle or a deep copy; the others are runtime state (transports, locks,
    #: loaded models, caches), rebuilt lazily on first use.
    _kept_private: ClassVar[frozenset[str]] = frozenset()
    #: Fields that are runtime state too (a router's shared state): not copied, rebuilt by ``_rebuild_runtime``.
    _runtime_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, /, **data: Any) -> None:
        """Validate the settings: any mistake is one :class:`~llmkit.errors.ConfigurationError` naming the fix,
        never pydantic's error with the values given (a key among them)."""
        for key in _NONE_MEANS_DEFAULT:  # LlamaIndex code passes None for "the default"
            if key in data and data[key] is None:
                del data[key]
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise configuration_error(type(self), exc) from None

    # ----------------------------------------------------------------------------------------------------------------
    # Copies, pickles and repr: runtime state is rebuilt, secrets never leave the process in clear.

    def __getstate__(self) -> dict[str, Any]:
        """Pickling keeps the settings and drops runtime state (rebuilt lazily after loading).

        A pickle never holds a secret in clear: a key that came from the environment (``_secret_env``, e.g.
        ``OPENAI_API_KEY``) is left out and read from the environment again when the pickle is loaded (a
        :class:`~llmkit.errors.ConfigurationError` there if it is not set); a key given in code, or a secret-looking
        header or setting (``Authorization``, ``*key*``, ``*token*``, ``*secret*``, ``cookie``), makes pickling fail
        with a :class:`~llmkit.errors.SerializationError` naming the fix, rather than be written to disk or a queue.
        """
        state = super().__getstate__()
        fields = {name: value for name, value in state["__dict__"].items() if name not in self._runtime_fields}
        from_env: list[str] = []
        for name, value in fields.items():
            if isinstance(value, SecretStr):
                variables = self._secret_env.get(name, ())
                if any(os.environ.get(v) == value.get_secret_value() for v in variables):
                    fields[name] = None
                    from_env.append(name)
                else:
                    where = f"the environment variable {variables[0]}" if variables else "the environment"
                    raise SerializationError(
                        f"{type(self).__name__}'s {name} was given in code, and a pickle would store it in clear: "
                        f"put it in {where} and build the LLM without {name}= (the pickle then reads it from there), "
                        "or build the LLM again where it is needed"
                    )
            elif isinstance(value, dict) and (names := _secret_names(value)):
                raise SerializationError(
                    f"{type(self).__name__}.{name} holds {', '.join(map(repr, names))}, which look like secrets a "
                    "pickle would store in clear: build the LLM again where it is needed (keys from the environment "
                    "can be pickled)"
                )
        private = state.get("__pydantic_private__") or {}
        return {
            **state,
            "__dict__": fields,
            "__pydantic_private__": {k: v for k, v in private.items() if k in self._kept_private},
            "llmkit_secrets_from_env": from_env,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        fields = dict(state["__dict__"])
        for name in state.pop("llmkit_secrets_from_env", []):
            variables = self._secret_env.get(name, ())
            value = next((os.environ[v] for v in variables if os.environ.get(v)), None)
            if value is None:
                raise ConfigurationError(
                    f"{type(self).__name__} was pickled without its {name} (a pickle never holds a secret): "
                    f"set {' or '.join(variables)} in this process"
                )
            fields[name] = SecretStr(value)
        fields.update(dict.fromkeys(self._runtime_fields))
        state["__dict__"] = fields
        state["__pydantic_private__"] = {**self._fresh_private(), **(state.get("__pydantic_private__") or {})}
        super().__setstate__(state)
        self._rebuild_runtime()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> BaseLLM:
        """A deep copy shares no runtime state (transport, locks, loaded model handle): the copy rebuilds its own."""
        memo = {} if memo is None else memo
        cls = type(self)
        clone = cls.__new__(cls)
        memo[id(self)] = clone
        values = {k: v for k, v in self.__dict__.items() if k not in self._runtime_fields}
        fields = {**copy.deepcopy(values, memo), **dict.fromkeys(self._runtime_fields)}
        object.__setattr__(clone, "__dict__", fields)
        object.__setattr__(clone, "__pydantic_extra__", copy.deepcopy(self.__pydantic_extra__, memo))
        object.__setattr__(clone, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        private = self.__pydantic_private__ or {}
        kept = {k: copy.deepcopy(v, memo) for k, v in private.items() if k in self._kept_private}
        object.__setattr__(clone, "__pydantic_private__", {**clone._fresh_private(), **kept})
        clone._rebuild_runtime()
        return clone

    def _fresh_private(self) -> dict[str, Any]:
        from pydantic_core import PydanticUndefined

        fresh: dict[str, Any] = {}
        for name, attr in type(self).__private_attributes__.items():
            if attr.default_factory is not None:
                factory = cast("Callable[[], Any]", attr.default_factory)  # a private attribute's takes no data
                fresh[name] = factory()
            elif attr.default is not PydanticUndefined:
                fresh[name] = copy.deepcopy(attr.default)
        return fresh

    def _rebuild_runtime(self) -> None:
        """Rebuild the ``_runtime_fields`` after a copy or an unpickling (nothing by default)."""

    def __repr_args__(self) -> Any:
        # Secret-looking entries of dict settings (default_headers, additional_kwargs) are shown redacted.
        for name, value in super().__repr_args__():
            if isinstance(value, dict) and _secret_names(value):
                value = {k: "**********" if _SECRET_NAME.search(str(k)) else v for k, v in value.items()}
            yield name, value

    @classmethod
    def class_name(cls) -> str:
        """Get the class name, used as a unique ID in serialization."""
        return "base_llm"

    @property
    @abstractmethod
    def metadata(self) -> LLMMetadata:
        """LLM metadata."""

    def to_payload(self) -> dict[str, Any]:
        """A representation of this LLM for observability, without secrets: the class name and the metadata."""
        return {"class_name": self.class_name(), **self.metadata.model_dump()}

    def convert_chat_messages(self, messages: Sequence[ChatMessage]) -> list[Any]:
        """Convert chat messages to an LLM specific message format (plain dicts unless the provider says otherwise)."""
        return [message.model_dump() for message in messages]

    @abstractmethod
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat endpoint for LLM."""

    @abstractmethod
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Completion endpoint for LLM."""

    @abstractmethod
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Streaming chat endpoint for LLM."""

    @abstractmethod
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Streaming completion endpoint for LLM."""

    @abstractmethod
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async chat endpoint for LLM."""

    @abstractmethod
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Async completion endpoint for LLM."""

    @abstractmethod
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """Async streaming chat endpoint for LLM."""

    @abstractmethod
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        """Async streaming completion endpoint for LLM."""

    def close(self) -> None:
        """Release connections and other resources. Safe to call twice."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()

    def __enter__(self) -> BaseLLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> BaseLLM:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# What a derived value is worked out by, called on the LLM (see LLM._derived_value): each dispatches to the LLM's own
# class, and none is made per call.
_WORK_OUT_METADATA: Callable[[Any], LLMMetadata] = operator.attrgetter("metadata")
_WORK_OUT_ROUTING: Callable[[Any], tuple[bool, bool]] = operator.methodcaller("_work_out_routing")
_WORK_OUT_FIELD_PARAMETERS: Callable[[Any], dict[str, Any]] = operator.methodcaller("_work_out_field_parameters")
# a call without kwargs (the method only reads them)
_WORK_OUT_EVENT_FIELDS: Callable[[Any], tuple[str, str, dict[str, Any]]] = operator.methodcaller(
    "_work_out_event_fields", {}
)


def _map_stream(gen: Iterator[Any], convert: Callable[[Any], R]) -> Generator[R, None, None]:
    try:
        for item in gen:
            yield convert(item)
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            close()


async def _amap_stream(gen: AsyncIterator[Any], convert: Callable[[Any], R]) -> AsyncGenerator[R, None]:
    try:
        async for item in gen:
            yield convert(item)
    finally:
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()


def _next_or_done(iterator: Iterator[Any]) -> Any:
    return next(iterator, _SENTINEL_DONE)


_stream_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _stream_workers() -> concurrent.futures.ThreadPoolExecutor:
    global _stream_pool
    if _stream_pool is None:
        _stream_pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="llmkit-stream")
    return _stream_pool


async def _athread_stream(gen: Iterator[R]) -> AsyncGenerator[R, None]:
    """Pump a blocking generator from a worker thread, one item at a time, so the event loop never blocks.

    Cancelling the consumer cancels at once; a step still running in its worker closes the generator there when
    it returns (closing it from here meanwhile would fail with "generator already executing")."""
    workers = _stream_workers()
    close: Callable[[], object] = getattr(gen, "close", None) or (lambda: None)
    step: concurrent.futures.Future[Any] | None = None
    try:
        while True:
            step = workers.submit(contextvars.copy_context().run, _next_or_done, gen)
            item = await asyncio.wrap_future(step)
            if item is _SENTINEL_DONE:
                return
            yield item
    finally:
        if step is not None and not step.done():
            step.add_done_callback(lambda _: close())
        else:
            await asyncio.to_thread(close)


def _whole(response: R) -> R:
    """A whole answer as the one chunk of a stream (its delta is all of its text)."""
    delta = response.text if isinstance(response, CompletionResponse) else response.message.content or ""
    return response.model_copy(update={"delta": delta})


async def _aone_chunk(call: Callable[[], Awaitable[R]]) -> AsyncGenerator[R, None]:
    yield _whole(await call())


def _end_event(
    manager: CallbackManager,
    event: LLMEvent | None,
    response: ChatResponse | CompletionResponse | None,
    usage: Usage | None = None,
) -> None:
    if event is not None:
        manager.end(event, response, usage if usage is not None else response.usage if response is not None else None)


#: Sampling settings an event reports (from the call's kwargs, else the LLM's own field of that name).
_PARAMETERS = ("temperature", "max_tokens", "top_p", "top_k", "stop", "seed", "frequency_penalty", "presence_penalty")


class _Event:
    """A call's event as a context manager: an exception inside reports the error, ``done(response)`` the end.

    While it is open the call is the current one (a retry or a nested call is its child); ``done`` stamps the
    response's usage with who served it (for ``response.cost``)."""

    __slots__ = ("event", "llm", "manager", "response", "token")

    def __init__(self, llm: LLM, manager: CallbackManager | None, event: LLMEvent | None) -> None:
        self.llm, self.manager, self.event = llm, manager, event
        self.response: ChatResponse | CompletionResponse | None = None
        self.token: Any = None

    def done(self, response: R) -> R:
        self.response = self.llm._stamped_response(response)
        return response

    def __enter__(self) -> _Event:
        if self.event is not None:
            self.token = _CURRENT.set(self.event)
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        if self.manager is None or self.event is None:
            return
        _CURRENT.reset(self.token)
        if exc is not None:
            self.manager.error(self.event, exc)
        else:
            _end_event(self.manager, self.event, self.response)


#: Names of headers and settings whose values are secrets.
_SECRET_NAME = re.compile(r"authorization|key|token|secret|cookie|password|credential", re.IGNORECASE)


def _type_name(output_cls: Any) -> str:
    """A name for an output type in events: a class's name, else what it reads as (``list[int]``)."""
    return str(getattr(output_cls, "__name__", output_cls))


def _secret_names(values: dict[Any, Any]) -> list[str]:
    return [k for k, v in values.items() if isinstance(k, str) and isinstance(v, str) and v and _SECRET_NAME.search(k)]


class LLM(BaseLLM):
    """The main class for interacting with language models.

    Attributes:
        system_prompt: system prompt for LLM calls.
        messages_to_prompt: function to convert a list of messages to an LLM prompt.
        completion_to_prompt: function to convert a completion to an LLM prompt.
        output_parser: output parser to parse, validate, and correct errors programmatically.
        pydantic_program_mode: pydantic program mode to use for structured prediction.
    """

    system_prompt: SkipJsonSchema[str | None] = Field(default=None, description="System prompt for LLM calls.")
    messages_to_prompt: SkipJsonSchema[Callable[[Sequence[ChatMessage]], str]] = Field(
        default=default_messages_to_prompt, exclude=True
    )
    completion_to_prompt: SkipJsonSchema[Callable[[str], str]] = Field(
        default=default_completion_to_prompt, exclude=True
    )
    output_parser: SkipJsonSchema[Any | None] = Field(default=None, exclude=True)
    pydantic_program_mode: SkipJsonSchema[PydanticProgramMode] = PydanticProgramMode.DEFAULT

    _refused_modes: set[PydanticProgramMode] = PrivateAttr(default_factory=set)
    _kept_private: ClassVar[frozenset[str]] = frozenset({"_refused_modes"})  # what the service refused stays known
    #: A provider whose ``metadata`` and capabilities follow from its fields alone says so: what calls derive from
    #: them (the routing, the metadata, the parameters events report) is then worked out once, not per call, and
    #: again after a field is set.
    _derived_from_fields: ClassVar[bool] = False
    _derived: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        private = self.__pydantic_private__
        if name[0] != "_" and private is not None and private.get("_derived"):
            private["_derived"] = {}

    def __copy__(self) -> Self:
        # pydantic's copy shares the private state's values, so ``model_copy(update=...)``, which sets fields without
        # ``__setattr__``, would keep values derived from the original's fields: the copy works out its own.
        clone = super().__copy__()
        private = clone.__pydantic_private__
        if private is not None and "_derived" in private:
            private["_derived"] = {}
        return clone

    def _derived_value(self, key: str, work_out: Callable[[Any], T]) -> T:
        """A value that follows from the fields: kept under ``key`` when the provider says so (until a field is
        set), else ``work_out(self)`` per call. (A function of the LLM, not a bound method: a call that finds the
        value kept makes no method object.)"""
        private = self.__pydantic_private__
        if private is not None:
            value: T | None = private["_derived"].get(key)
            if value is not None:
                return value
        value = work_out(self)
        if self._derived_from_fields and private is not None:
            private["_derived"][key] = value
        return value

    def _call_metadata(self) -> LLMMetadata:
        """``metadata`` as calls read it (built once when it follows from the fields)."""
        return self._derived_value("metadata", _WORK_OUT_METADATA)

    @classmethod
    def class_name(cls) -> str:
        return "llm"

    # ----------------------------------------------------------------------------------------------------------------
    # Primitives: a provider overrides the family (or families) it natively has.

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        raise NotImplementedError(f"{type(self).__name__} implements neither _chat nor _complete")

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[ChatResponse]:
        yield _whole(self._chat(messages, **kwargs))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await asyncio.to_thread(self._chat, messages, **kwargs)

    def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        if not self._capabilities().streaming:  # no native stream: the (natively async) answer, as one chunk
            return _aone_chunk(lambda: self._achat(messages, **kwargs))
        return _athread_stream(iter(self._stream_chat(messages, **kwargs)))

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError(f"{type(self).__name__} implements neither _chat nor _complete")

    def _stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[CompletionResponse]:
        yield _whole(self._complete(prompt, **kwargs))

    async def _acomplete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        return await asyncio.to_thread(self._complete, prompt, **kwargs)

    def _astream_complete(self, prompt: str, **kwargs: Any) -> AsyncIterator[CompletionResponse]:
        if not self._capabilities().streaming:
            return _aone_chunk(lambda: self._acomplete(prompt, **kwargs))
        return _athread_stream(iter(self._stream_complete(prompt, **kwargs)))

    # ----------------------------------------------------------------------------------------------------------------
    # Capabilities (declared by providers) and routing: which family serves a call.

    def _capabilities(self) -> Capabilities:
        """What the service natively supports: providers declare it. A subclass that declares nothing (a user's own
        model) gets what its primitives show: the families it implements, native streaming if it streams, and
        tool calls (hence ``FUNCTION`` structured output) if its metadata says it is a function-calling model."""
        cls = type(self)
        chat, completion = cls._implements("_chat"), cls._implements("_complete")
        calls_tools = self.metadata.is_function_calling_model
        return Capabilities(
            chat=chat or not completion,
            completion=completion,
            streaming=cls._implements("_stream_chat") or cls._implements("_stream_complete"),
            structured_modes=frozenset({PydanticProgramMode.FUNCTION}) if calls_tools else frozenset(),
            tool_calling=calls_tools,
        )

    @property
    def capabilities(self) -> Capabilities:
        """What the model natively supports, less the structured-output modes the service has refused."""
        capabilities = self._capabilities()
        for mode in self._refused_modes:
            capabilities = capabilities.without_mode(mode)
        return capabilities

    def refuse_structured_mode(self, mode: PydanticProgramMode) -> None:
        """Remember that the service refused structured-output ``mode``: ``DEFAULT`` stops trying it on this LLM."""
        self._refused_modes.add(mode)

    @classmethod
    def _implements(cls, name: str) -> bool:
        return getattr(cls, name) is not getattr(LLM, name)

    def _work_out_routing(self) -> tuple[bool, bool]:
        """(chat calls go to the completion family, completion calls go to the chat family)."""
        capabilities, chat_model = self._capabilities(), self._call_metadata().is_chat_model
        return (
            not capabilities.chat or (capabilities.completion and not chat_model),
            not capabilities.completion or (capabilities.chat and chat_model),
        )

    def _chat_via_completion(self) -> bool:
        return self._derived_value("routes", _WORK_OUT_ROUTING)[0]

    def _completion_via_chat(self) -> bool:
        return self._derived_value("routes", _WORK_OUT_ROUTING)[1]

    def _prepare_messages(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        out = as_messages(messages)
        if self.system_prompt and not (out and out[0].role in (MessageRole.SYSTEM, MessageRole.DEVELOPER)):
            role = self._call_metadata().system_role
            out.insert(0, ChatMessage(role=role, blocks=[TextBlock(text=self.system_prompt)]))
        return out

    def _prepare_prompt(self, prompt: str, formatted: bool) -> str:
        if formatted:
            return prompt
        if self.system_prompt:
            prompt = f"{self.system_prompt}\n\n{prompt}"
        return self.completion_to_prompt(prompt)

    def _prompt_messages(self, prompt: str) -> list[ChatMessage]:
        return self._prepare_messages([ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text=prompt)])])

    # ----------------------------------------------------------------------------------------------------------------
    # Callbacks

    def _provider_name(self) -> str:
        """Who serves this LLM's calls, for callbacks, traces and pricing (``openai``, ``llama.cpp``, ...): the
        class name unless the provider says better."""
        return self.class_name()

    def _stamp_usage(self, usage: Usage) -> None:
        """Record who served a call on its usage (the model as the reply named it, else this LLM's)."""
        # Read and written as pydantic's assignment does (Usage validates no assignment), without its dispatch.
        values = usage.__dict__
        if values["provider"] is None:
            assigned = usage.__pydantic_fields_set__
            values["provider"] = self._provider_name()
            assigned.add("provider")
            if values["model"] is None:
                values["model"] = self._call_metadata().model_name
                assigned.add("model")

    def _field_parameters(self) -> dict[str, Any]:
        """The sampling parameters this LLM's fields set (the ones events report)."""
        return self._derived_value("parameters", _WORK_OUT_FIELD_PARAMETERS)

    def _work_out_field_parameters(self) -> dict[str, Any]:
        fields = type(self).model_fields  # only declared fields: a missing attribute costs pydantic an exception
        return {name: value for name in _PARAMETERS if name in fields and (value := getattr(self, name)) is not None}

    def _event_fields(self, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """What an event reports of a call: provider, model and sampling parameters (for a call without kwargs,
        worked out once when they follow from the fields; handlers only read them)."""
        if kwargs:
            return self._work_out_event_fields(kwargs)
        return self._derived_value("event_fields", _WORK_OUT_EVENT_FIELDS)

    def _work_out_event_fields(self, kwargs: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        parameters = dict(self._field_parameters())
        if kwargs:  # a call's own parameters over the fields' (None: the service's default)
            for name in _PARAMETERS:
                if name in kwargs:
                    if kwargs[name] is None:
                        parameters.pop(name, None)
                    else:
                        parameters[name] = kwargs[name]
        model = kwargs.get("model")
        return (
            self._provider_name(),
            model if isinstance(model, str) else self._call_metadata().model_name,
            parameters,
        )

    def _quiet(self) -> bool:
        """Whether nobody listens to a call made now (no handler of this LLM's, no global one, no enclosing call)."""
        return not self.callback_manager.listening

    def _stamped_response(self, response: R) -> R:
        """``response`` with its usage stamped with who served it (:meth:`_stamp_usage`)."""
        usage = response.usage
        if usage is not None:
            self._stamp_usage(usage)
        return response

    def _event(self, kind: str, payload: Any, kwargs: dict[str, Any]) -> _Event:
        """One call as the callbacks see it: ``with self._event(...) as event: return event.done(response)``."""
        if self._quiet():
            return _Event(self, None, None)  # nobody listens: no event, no work on the hot path
        manager = self.callback_manager
        event = manager.start(kind, payload, kwargs, self.class_name(), *self._event_fields(kwargs))
        return _Event(self, manager, event)

    def _start(self, kind: str, payload: Any, kwargs: dict[str, Any]) -> LLMEvent | None:
        if self._quiet():
            return None
        return self.callback_manager.start(kind, payload, kwargs, self.class_name(), *self._event_fields(kwargs))

    def _observed(self, event: LLMEvent | None, gen: Iterator[R]) -> Generator[R, None, None]:
        """A stream as callbacks see it (:meth:`_observe`), or, when nobody listens, just stamped (:meth:`_stamped`)."""
        return self._observe(event, gen) if event is not None else self._stamped(gen)

    def _stamped(self, gen: Iterator[R]) -> Generator[R, None, None]:
        """A stream nobody listens to: its chunks, the usage stamped with who served it."""
        try:
            for item in gen:
                if item.usage is not None:
                    self._stamp_usage(item.usage)
                yield item
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()

    def _observe(self, event: LLMEvent, gen: Iterator[R]) -> Generator[R, None, None]:
        """Report a stream's tokens, then its end: when it is exhausted, or closed early by the consumer (the event
        ends with the last chunk received, and the usage of the last chunk that had one); a failure reports the
        error. While the provider produces a chunk the call is the current one (its retries are its children)."""
        last: R | None = None
        usage: Usage | None = None
        manager = self.callback_manager
        iterator = iter(gen)
        try:
            while True:
                token = _CURRENT.set(event)
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                finally:
                    _CURRENT.reset(token)
                if item.delta:
                    manager.token(event, item.delta)
                if item.usage is not None:
                    self._stamp_usage(item.usage)
                    usage = item.usage
                if item.additional_kwargs:
                    event.finish_reason = item.additional_kwargs.get("finish_reason") or event.finish_reason
                last = item
                yield item
        except Exception as exc:
            manager.error(event, exc)
            raise
        except GeneratorExit:
            _end_event(manager, event, last, usage)
            raise
        finally:
            close = getattr(gen, "close", None)
            if close is not None:
                close()
        _end_event(manager, event, last, usage)

    async def _aobserve(self, event: LLMEvent | None, gen: AsyncIterator[R]) -> AsyncGenerator[R, None]:
        """Async :meth:`_observe`; a cancelled stream reports the cancellation as its error."""
        last: R | None = None
        usage: Usage | None = None
        manager = self.callback_manager
        iterator = aiter(gen)
        try:
            while True:
                token = _CURRENT.set(event) if event is not None else None
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    break
                finally:
                    if token is not None:
                        _CURRENT.reset(token)
                if item.usage is not None:
                    self._stamp_usage(item.usage)
                    usage = item.usage
                if event is not None:
                    if item.delta:
                        manager.token(event, item.delta)
                    if item.additional_kwargs:
                        event.finish_reason = item.additional_kwargs.get("finish_reason") or event.finish_reason
                last = item
                yield item
        except (Exception, asyncio.CancelledError) as exc:
            if event is not None:
                manager.error(event, exc)
            raise
        except GeneratorExit:
            _end_event(manager, event, last, usage)
            raise
        finally:
            aclose = getattr(gen, "aclose", None)
            if aclose is not None:
                await aclose()
        _end_event(manager, event, last, usage)

    # ----------------------------------------------------------------------------------------------------------------
    # The eight endpoints

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat endpoint for LLM.

        Example:
            >>> from llmkit import ScriptedLLM, ChatMessage
            >>> ScriptedLLM().chat([ChatMessage(role="user", content="Hello")]).content
            'Hello'
        """
        messages = self._prepare_messages(messages)
        if self._quiet() and not self._chat_via_completion():  # the usual call: nobody listens, no event object
            return self._stamped_response(self._chat(messages, **kwargs))
        with self._event("chat", messages, kwargs) as event:
            if self._chat_via_completion():
                return event.done(completion_to_chat(self._complete(self.messages_to_prompt(messages), **kwargs)))
            return event.done(self._chat(messages, **kwargs))

    def complete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Completion endpoint for LLM. A chat model gets the prompt as a single ``user`` message.

        Example:
            >>> from llmkit import ScriptedLLM
            >>> ScriptedLLM().complete("your prompt").text
            'your prompt'
        """
        prompt = require_prompt(prompt)
        with self._event("complete", prompt, kwargs) as event:
            if self._completion_via_chat():
                return event.done(chat_to_completion(self._chat(self._prompt_messages(prompt), **kwargs)))
            return event.done(self._complete(self._prepare_prompt(prompt, formatted), **kwargs))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Streaming chat endpoint for LLM: each ``ChatResponse`` has the new ``delta`` and the text so far.

        Example:
            >>> from llmkit import ScriptedLLM, ChatMessage
            >>> "".join(r.delta for r in ScriptedLLM().stream_chat([ChatMessage(role="user", content="Hi there")]))
            'Hi there'
        """
        messages = self._prepare_messages(messages)
        event = self._start("chat", messages, kwargs)
        gen: Iterator[ChatResponse]
        if self._chat_via_completion():
            gen = _map_stream(self._stream_complete(self.messages_to_prompt(messages), **kwargs), completion_to_chat)
        else:
            gen = self._stream_chat(messages, **kwargs)
        return self._observed(event, gen)

    def stream_complete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Streaming completion endpoint for LLM.

        Example:
            >>> from llmkit import ScriptedLLM
            >>> [r.delta for r in ScriptedLLM().stream_complete("a b")]
            ['a ', 'b']
        """
        prompt = require_prompt(prompt)
        event = self._start("complete", prompt, kwargs)
        gen: Iterator[CompletionResponse]
        if self._completion_via_chat():
            gen = _map_stream(self._stream_chat(self._prompt_messages(prompt), **kwargs), chat_to_completion)
        else:
            gen = self._stream_complete(self._prepare_prompt(prompt, formatted), **kwargs)
        return self._observed(event, gen)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async chat endpoint for LLM."""
        messages = self._prepare_messages(messages)
        if self._quiet() and not self._chat_via_completion():  # the usual call: nobody listens, no event object
            return self._stamped_response(await self._achat(messages, **kwargs))
        with self._event("chat", messages, kwargs) as event:
            if self._chat_via_completion():
                prompt = self.messages_to_prompt(messages)
                return event.done(completion_to_chat(await self._acomplete(prompt, **kwargs)))
            return event.done(await self._achat(messages, **kwargs))

    async def acomplete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Async completion endpoint for LLM."""
        prompt = require_prompt(prompt)
        with self._event("complete", prompt, kwargs) as event:
            if self._completion_via_chat():
                return event.done(chat_to_completion(await self._achat(self._prompt_messages(prompt), **kwargs)))
            return event.done(await self._acomplete(self._prepare_prompt(prompt, formatted), **kwargs))

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """Async streaming chat endpoint for LLM: ``gen = await llm.astream_chat(...)``, then ``async for``."""
        messages = self._prepare_messages(messages)
        event = self._start("chat", messages, kwargs)
        gen: AsyncIterator[ChatResponse]
        if self._chat_via_completion():
            prompt = self.messages_to_prompt(messages)
            gen = _amap_stream(self._astream_complete(prompt, **kwargs), completion_to_chat)
        else:
            gen = self._astream_chat(messages, **kwargs)
        return self._aobserve(event, gen)

    async def astream_complete(
        self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async streaming completion endpoint for LLM."""
        prompt = require_prompt(prompt)
        event = self._start("complete", prompt, kwargs)
        gen: AsyncIterator[CompletionResponse]
        if self._completion_via_chat():
            gen = _amap_stream(self._astream_chat(self._prompt_messages(prompt), **kwargs), chat_to_completion)
        else:
            gen = self._astream_complete(self._prepare_prompt(prompt, formatted), **kwargs)
        return self._aobserve(event, gen)

    # ----------------------------------------------------------------------------------------------------------------
    # Prediction from templates: a chat model gets messages, a completion model gets text.

    def _template_messages(self, prompt: BasePromptTemplate, prompt_args: dict[str, Any]) -> list[ChatMessage]:
        messages = as_template(prompt, prompt_args).format_messages(**prompt_args)
        if self.output_parser is not None and messages and messages[-1].content is not None:
            messages[-1].content = self.output_parser.format(messages[-1].content)
        return messages

    def _template_text(self, prompt: BasePromptTemplate, prompt_args: dict[str, Any]) -> str:
        text = as_template(prompt, prompt_args).format(**prompt_args)
        return self.output_parser.format(text) if self.output_parser is not None else text

    def _parse_output(self, output: str) -> str:
        return str(self.output_parser.parse(output)) if self.output_parser is not None else output

    def predict(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        """Predict for a given prompt.

        Example:
            >>> from llmkit import ScriptedLLM, PromptTemplate
            >>> ScriptedLLM().predict(PromptTemplate("Please write a random name related to {topic}."), topic="cats")
            'Please write a random name related to cats.'
        """
        if self.metadata.is_chat_model:
            output = self.chat(self._template_messages(prompt, prompt_args)).message.content or ""
        else:
            output = self.complete(self._template_text(prompt, prompt_args)).text
        return self._parse_output(output)

    def stream(self, prompt: BasePromptTemplate, **prompt_args: Any) -> TokenGen:
        """Stream predict for a given prompt: yields each new piece of text."""
        if self.output_parser is not None:
            raise ValueError("Streaming is not supported with an output parser; use predict()")
        if self.metadata.is_chat_model:
            for chunk in self.stream_chat(self._template_messages(prompt, prompt_args)):
                yield chunk.delta or ""
        else:
            for piece in self.stream_complete(self._template_text(prompt, prompt_args)):
                yield piece.delta or ""

    async def apredict(self, prompt: BasePromptTemplate, **prompt_args: Any) -> str:
        """Async predict for a given prompt."""
        if self.metadata.is_chat_model:
            output = (await self.achat(self._template_messages(prompt, prompt_args))).message.content or ""
        else:
            output = (await self.acomplete(self._template_text(prompt, prompt_args))).text
        return self._parse_output(output)

    async def astream(self, prompt: BasePromptTemplate, **prompt_args: Any) -> TokenAsyncGen:
        """Async stream predict: ``gen = await llm.astream(...)``, then ``async for token in gen``."""
        if self.output_parser is not None:
            raise ValueError("Streaming is not supported with an output parser; use apredict()")

        async def tokens() -> AsyncGenerator[str, None]:
            if self.metadata.is_chat_model:
                async for chunk in await self.astream_chat(self._template_messages(prompt, prompt_args)):
                    yield chunk.delta or ""
            else:
                async for piece in await self.astream_complete(self._template_text(prompt, prompt_args)):
                    yield piece.delta or ""

        return tokens()

    # ----------------------------------------------------------------------------------------------------------------
    # Structured output

    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Structured predict: an instance of ``output_cls``, validated (see :mod:`llmkit.structured`).

        ``output_cls`` is anything pydantic's ``TypeAdapter`` accepts (a model, ``RootModel``, dataclass,
        ``TypedDict``, ``int``, ``list[str]``...); anything else is an :class:`~llmkit.errors.OutputTypeError`.

        Example:
            >>> from pydantic import BaseModel
            >>> from llmkit import ScriptedLLM, PromptTemplate
            >>> class Test(BaseModel):
            ...     name: str
            >>> prompt = PromptTemplate("Please predict a Test with a random name related to {topic}.")
            >>> ScriptedLLM().structured_predict(Test, prompt, topic="cats")
            Test(name='string')
            >>> ScriptedLLM().structured_predict(list[int], prompt, topic="cats")
            [0]
        """
        steps = structured_steps(
            self,
            output_cls,
            as_template(prompt, prompt_args).format_messages(**prompt_args),
            self.pydantic_program_mode,
            llm_kwargs or {},
        )
        with operation("structured_predict", self.callback_manager, output_cls=_type_name(output_cls)):
            result: Model = run_steps(steps, self.chat)
            return result

    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Async structured predict."""
        steps = structured_steps(
            self,
            output_cls,
            as_template(prompt, prompt_args).format_messages(**prompt_args),
            self.pydantic_program_mode,
            llm_kwargs or {},
        )
        with operation("structured_predict", self.callback_manager, output_cls=_type_name(output_cls)):
            result: Model = await arun_steps(steps, self.achat)
            return result

    def stream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model | FlexibleModel, None, None]:
        """Stream structured predict: partial objects as the JSON arrives; the last one is a validated
        ``output_cls`` (or :class:`~llmkit.errors.StructuredOutputError` is raised)."""
        mode, messages, kwargs = stream_request(
            self,
            output_cls,
            as_template(prompt, prompt_args).format_messages(**prompt_args),
            self.pydantic_program_mode,
        )
        chunks = self.stream_chat(messages, **kwargs, **(llm_kwargs or {}))
        yield from iter_partials(chunks, output_cls, mode)

    async def astream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model | FlexibleModel, None]:
        """Async stream structured predict: ``gen = await llm.astream_structured_predict(...)``, then iterate."""
        mode, messages, kwargs = stream_request(
            self,
            output_cls,
            as_template(prompt, prompt_args).format_messages(**prompt_args),
            self.pydantic_program_mode,
        )
        chunks = await self.astream_chat(messages, **kwargs, **(llm_kwargs or {}))
        return aiter_partials(chunks, output_cls, mode)

    def as_structured_llm(self, output_cls: Any, **kwargs: Any) -> StructuredLLM:
        """Return a structured LLM around a given object: its chat replies carry an ``output_cls`` instance."""
        from llmkit.structured_llm import StructuredLLM

        return StructuredLLM(llm=self, output_cls=output_cls, **kwargs)

    def with_cache(self, cache: Cache | None = None, **options: Any) -> CachedLLM:
        """This LLM answering repeated requests from ``cache`` (default: the on-disk SQLite cache).

        ``options`` are :class:`~llmkit.cache.CachedLLM`'s (``namespace``, ``ttl``, ``single_flight``...).

        Example:
            >>> from llmkit import MockLLM
            >>> from llmkit.cache import MemoryCache
            >>> llm = MockLLM().with_cache(MemoryCache(), namespace="docs")
            >>> llm.complete("hi").additional_kwargs.get("cache_hit"), llm.complete("hi").additional_kwargs["cache_hit"]
            (None, True)
        """
        from llmkit.cache import CachedLLM

        if cache is not None:
            options["cache"] = cache
        return CachedLLM(llm=self, **options)

    # ----------------------------------------------------------------------------------------------------------------
    # Tool calling

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments of a call with tools: the conversation, the tools (``BaseTool``, ``ToolMetadata``
        or OpenAI dicts) and ``tool_choice`` (``"required"`` with ``tool_required``). A provider may override it."""
        from llmkit.calling import conversation

        if not self.capabilities.tool_calling:
            raise ConfigurationError(
                f"{type(self).__name__} does not call tools natively; use predict_and_call() (it falls back to a "
                "ReAct prompt) or a function-calling model"
            )
        request: dict[str, Any] = {"messages": conversation(user_msg, chat_history)}
        if tools:
            request["tools"] = list(tools)
            request["tool_choice"] = "required" if tool_required else "auto"
        return {**request, **kwargs}

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[Any],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Check a ``chat_with_tools`` answer: without ``allow_parallel_tool_calls``, only its first call is kept."""
        from llmkit.calling import single_call

        return response if allow_parallel_tool_calls else single_call(response)

    def chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Chat with function calling: the answer may carry tool calls (read them with
        :meth:`get_tool_calls_from_response`). ``tool_required`` forces a call.

        Example:
            >>> from llmkit import ScriptedLLM, FunctionTool
            >>> def add(a: int, b: int) -> int:
            ...     return a + b
            >>> response = ScriptedLLM().chat_with_tools([FunctionTool.from_defaults(add)], "1 + 2?")
            >>> ScriptedLLM().get_tool_calls_from_response(response)[0].tool_name
            'add'
        """
        request = self._prepare_chat_with_tools(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, **kwargs
        )
        response = self.chat(**request)
        return self._validate_chat_with_tools_response(response, tools, allow_parallel_tool_calls, **kwargs)

    async def achat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Async :meth:`chat_with_tools`."""
        request = self._prepare_chat_with_tools(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, **kwargs
        )
        response = await self.achat(**request)
        return self._validate_chat_with_tools_response(response, tools, allow_parallel_tool_calls, **kwargs)

    def stream_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseGen:
        """Streaming :meth:`chat_with_tools` (chunks are not validated, as in LlamaIndex)."""
        request = self._prepare_chat_with_tools(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, **kwargs
        )
        return self.stream_chat(**request)

    async def astream_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseAsyncGen:
        """Async streaming :meth:`chat_with_tools`."""
        request = self._prepare_chat_with_tools(
            tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, tool_required, **kwargs
        )
        return await self.astream_chat(**request)

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls a response asks for (``message.additional_kwargs['tool_calls']`` in OpenAI's shape, or
        ``ToolCallBlock``s). Null or non-JSON arguments read as ``{}``. Override it to read your provider's format:
        ``predict_and_call`` uses it."""
        from llmkit.calling import tool_selections

        selections = tool_selections(response)
        if not selections and error_on_no_tool_call:
            raise ToolCallError(f"Expected at least one tool call, but got 0 tool calls: {response.text[:200]!r}")
        return selections

    def predict_and_call(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        error_on_no_tool_call: bool = True,
        error_on_tool_error: bool = False,
        **kwargs: Any,
    ) -> AgentChatResponse:
        """Predict and call the tool: native tool calls where the model has them, a ReAct text loop otherwise.

        A tool that raises, or arguments it does not take, give an output with ``is_error=True`` (or, with
        ``error_on_tool_error``, a :class:`~llmkit.errors.ToolCallError`). A function-calling model that calls no
        tool is an error unless ``error_on_no_tool_call=False`` (then its answer is the response).

        Example:
            >>> from llmkit import ScriptedLLM, FunctionTool
            >>> def add(a: int, b: int) -> int:
            ...     '''Add two integers.'''
            ...     return a + b
            >>> ScriptedLLM().predict_and_call([FunctionTool.from_defaults(add)], "What is 1 + 2?").sources[0].tool_name
            'add'
        """
        from llmkit.calling import agent_response, conversation, react_steps, run_tools

        with operation("predict_and_call", self.callback_manager, tools=[tool.metadata.name for tool in tools]):
            if self.capabilities.tool_calling:
                response = self.chat_with_tools(
                    tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, **kwargs
                )
                selections = self.get_tool_calls_from_response(response, error_on_no_tool_call=error_on_no_tool_call)
                outputs = run_tools(tools, selections, verbose)
                answer = response.message.content or ""
                return agent_response(outputs, answer, error_on_tool_error, allow_parallel_tool_calls)
            steps = react_steps(tools, conversation(user_msg, chat_history), verbose, kwargs)
            result = run_steps(steps, self.chat)
            if isinstance(result, str):
                return agent_response([], result, error_on_tool_error)
            return agent_response(run_tools(tools, result, verbose), "", error_on_tool_error)

    async def apredict_and_call(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        error_on_no_tool_call: bool = True,
        error_on_tool_error: bool = False,
        **kwargs: Any,
    ) -> AgentChatResponse:
        """Async predict and call: parallel tool calls run concurrently."""
        from llmkit.calling import agent_response, arun_tools, conversation, react_steps

        with operation("predict_and_call", self.callback_manager, tools=[tool.metadata.name for tool in tools]):
            if self.capabilities.tool_calling:
                response = await self.achat_with_tools(
                    tools, user_msg, chat_history, verbose, allow_parallel_tool_calls, **kwargs
                )
                selections = self.get_tool_calls_from_response(response, error_on_no_tool_call=error_on_no_tool_call)
                outputs = await arun_tools(tools, selections, verbose)
                answer = response.message.content or ""
                return agent_response(outputs, answer, error_on_tool_error, allow_parallel_tool_calls)
            steps = react_steps(tools, conversation(user_msg, chat_history), verbose, kwargs)
            result = await arun_steps(steps, self.achat)
            if isinstance(result, str):
                return agent_response([], result, error_on_tool_error)
            return agent_response(await arun_tools(tools, result, verbose), "", error_on_tool_error)


__all__ = [
    "DEFAULT_MAX_REASKS",
    "LLM",
    "BaseLLM",
    "BaseOutputParser",
    "ChatResponseAsyncGen",
    "ChatResponseGen",
    "CompletionResponseAsyncGen",
    "CompletionResponseGen",
    "TokenAsyncGen",
    "TokenGen",
]
