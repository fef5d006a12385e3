"""WrapperLLM: an LLM around another LLM, the base of every cross-cutting feature (structured output, routing,
caching, tracing).

A wrapper forwards the eight public endpoints to the wrapped LLM, so the inner LLM's system prompt, prompt
formatting, family routing and callbacks apply exactly once, and the wrapper sees each call whole: a
:class:`LLMCall` naming the endpoint and its arguments. A concrete wrapper overrides one hook per calling style:

* ``_call(call)`` and ``_acall(call)``: one-shot calls (``chat``/``complete`` and their async forms);
* ``_stream(call)`` and ``_astream(call)``: streams. A stream hook may act before the first chunk (choose, retry,
  fail over, answer from a cache); once a chunk has reached the caller it can only pass chunks on or fail.

Metadata, capabilities (and what the service turns out to refuse), ``close``/``aclose`` are forwarded; everything
built on the endpoints (``predict``, ``structured_predict``, ``predict_and_call``...) goes through the hooks.

Example:
    >>> from llmkit import ChatMessage, ScriptedLLM
    >>> from llmkit.wrapper import LLMCall, WrapperLLM
    >>> class Shouting(WrapperLLM):
    ...     def _call(self, call: LLMCall):
    ...         response = call.invoke(self.llm)
    ...         return response.model_copy(update={"text": response.text.upper()}) if call.prompt else response
    >>> Shouting(llm=ScriptedLLM()).complete("hello").text
    'HELLO'
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from pydantic import Field, model_validator

from llmkit.capabilities import Capabilities
from llmkit.errors import ConfigurationError
from llmkit.llm import (
    LLM,
    NO_PROMPT,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    require_prompt,
)
from llmkit.structured import PydanticProgramMode
from llmkit.types import ChatMessage, ChatResponse, CompletionResponse, LLMMetadata, as_messages

Response = ChatResponse | CompletionResponse


@dataclass(frozen=True, slots=True)
class LLMCall:
    """One call of the public API as a wrapper sees it: ``chat`` (``messages``) or ``complete`` (``prompt``).

    ``invoke``/``ainvoke``/``stream``/``astream`` make the same call on any LLM, so a wrapper can send it to the
    wrapped LLM, to another deployment, or not at all.
    """

    endpoint: str
    messages: tuple[ChatMessage, ...] = ()
    prompt: str = ""
    formatted: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def chat(cls, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> LLMCall:
        """A ``chat`` call."""
        return cls("chat", messages=tuple(as_messages(messages)), kwargs=kwargs)

    @classmethod
    def complete(cls, prompt: str, formatted: bool, kwargs: dict[str, Any]) -> LLMCall:
        """A ``complete`` call."""
        return cls("complete", prompt=require_prompt(prompt), formatted=formatted, kwargs=kwargs)

    @property
    def is_chat(self) -> bool:
        """Whether this is a ``chat`` call (else ``complete``)."""
        return self.endpoint == "chat"

    def with_kwargs(self, **changes: Any) -> LLMCall:
        """The same call with some keyword arguments added or replaced."""
        return replace(self, kwargs={**self.kwargs, **changes})

    def invoke(self, llm: LLM) -> Response:
        """Make this call on ``llm``."""
        if self.is_chat:
            return llm.chat(self.messages, **self.kwargs)
        return llm.complete(self.prompt, self.formatted, **self.kwargs)

    async def ainvoke(self, llm: LLM) -> Response:
        """Make this call on ``llm``, async."""
        if self.is_chat:
            return await llm.achat(self.messages, **self.kwargs)
        return await llm.acomplete(self.prompt, self.formatted, **self.kwargs)

    def stream(self, llm: LLM) -> Generator[Response, None, None]:
        """Make this call on ``llm`` as a stream."""
        if self.is_chat:
            return llm.stream_chat(self.messages, **self.kwargs)
        return llm.stream_complete(self.prompt, self.formatted, **self.kwargs)

    async def astream(self, llm: LLM) -> AsyncGenerator[Response, None]:
        """Make this call on ``llm`` as an async stream."""
        if self.is_chat:
            return await llm.astream_chat(self.messages, **self.kwargs)
        return await llm.astream_complete(self.prompt, self.formatted, **self.kwargs)


class WrapperLLM(LLM):
    """An LLM that forwards every call to ``llm``; subclasses override the hooks (see the module docstring).

    The wrapper's structured-output mode and output parser default to the wrapped LLM's. Prompt settings
    (``system_prompt``, ``messages_to_prompt``, ``completion_to_prompt``) belong to the wrapped LLM, which applies
    them; setting them on the wrapper is an error rather than something silently ignored.
    """

    llm: LLM = Field(exclude=True, description="The wrapped LLM.")

    @classmethod
    def class_name(cls) -> str:
        return "wrapper_llm"

    @model_validator(mode="after")
    def _inherit_from_wrapped(self) -> WrapperLLM:
        misplaced = {"system_prompt", "messages_to_prompt", "completion_to_prompt"} & self.model_fields_set
        if misplaced:
            names = ", ".join(sorted(misplaced))
            raise ConfigurationError(f"{type(self).__name__}: set {names} on the wrapped LLM, which applies them")
        if "pydantic_program_mode" not in self.model_fields_set:
            self.pydantic_program_mode = self.llm.pydantic_program_mode
        if "output_parser" not in self.model_fields_set:
            self.output_parser = self.llm.output_parser
        return self

    # -- forwarded state -------------------------------------------------------------------------------------------

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata

    @property
    def capabilities(self) -> Capabilities:
        return self.llm.capabilities

    def refuse_structured_mode(self, mode: PydanticProgramMode) -> None:
        self.llm.refuse_structured_mode(mode)

    def close(self) -> None:
        self.llm.close()

    async def aclose(self) -> None:
        await self.llm.aclose()

    # -- the hooks ---------------------------------------------------------------------------------------------------

    def _call(self, call: LLMCall) -> Response:
        """A one-shot call (``chat`` or ``complete``)."""
        return call.invoke(self.llm)

    async def _acall(self, call: LLMCall) -> Response:
        """An async one-shot call."""
        return await call.ainvoke(self.llm)

    def _stream(self, call: LLMCall) -> Generator[Response, None, None]:
        """A stream; act only before its first chunk."""
        return call.stream(self.llm)

    async def _astream(self, call: LLMCall) -> AsyncGenerator[Response, None]:
        """An async stream; act only before its first chunk."""
        return await call.astream(self.llm)

    # -- the eight endpoints, each one hook ----------------------------------------------------------------------------

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return cast(ChatResponse, self._call(LLMCall.chat(messages, kwargs)))

    def complete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return cast(CompletionResponse, self._call(LLMCall.complete(prompt, formatted, kwargs)))

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return cast(ChatResponseGen, self._stream(LLMCall.chat(messages, kwargs)))

    def stream_complete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return cast(CompletionResponseGen, self._stream(LLMCall.complete(prompt, formatted, kwargs)))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return cast(ChatResponse, await self._acall(LLMCall.chat(messages, kwargs)))

    async def acomplete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return cast(CompletionResponse, await self._acall(LLMCall.complete(prompt, formatted, kwargs)))

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return cast(ChatResponseAsyncGen, await self._astream(LLMCall.chat(messages, kwargs)))

    async def astream_complete(
        self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return cast(CompletionResponseAsyncGen, await self._astream(LLMCall.complete(prompt, formatted, kwargs)))


__all__ = ["LLMCall", "WrapperLLM"]
