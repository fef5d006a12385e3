"""StructuredLLM: an LLM whose chat replies carry a validated pydantic object.

Built on :class:`~llmkit.wrapper.WrapperLLM`: each call becomes a structured prediction on the wrapped LLM (its
system prompt, routing and callbacks apply as for any call), answered with the object (``raw``) and its JSON (text).

Example:
    >>> from pydantic import BaseModel
    >>> from llmkit import ScriptedLLM, ChatMessage
    >>> class Song(BaseModel):
    ...     title: str
    >>> sllm = ScriptedLLM().as_structured_llm(Song)
    >>> sllm.chat([ChatMessage(role="user", content="A song")]).raw
    Song(title='string')
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

from pydantic import Field, PrivateAttr

from llmkit._steps import Steps, arun_steps, run_steps
from llmkit.callbacks import operation
from llmkit.output import OutputType, output_type
from llmkit.structured import aiter_partials, iter_partials, stream_request, structured_steps
from llmkit.types import ChatMessage, ChatResponse, LLMMetadata, MessageRole, chat_to_completion
from llmkit.wrapper import LLMCall, Response, WrapperLLM


def _reply(out: OutputType[Any], obj: Any, call: LLMCall) -> Response:
    text = out.dump_json(obj)
    response = ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=obj)
    return response if call.is_chat else chat_to_completion(response)


def _conversation(call: LLMCall) -> list[ChatMessage]:
    return list(call.messages) if call.is_chat else [ChatMessage(role=MessageRole.USER, content=call.prompt)]


class StructuredLLM(WrapperLLM):
    """Wraps an LLM so that every answer is an ``output_cls`` instance (in ``raw``; the text is its JSON).

    ``output_cls`` is anything pydantic's ``TypeAdapter`` accepts; anything else fails at construction with an
    :class:`~llmkit.errors.OutputTypeError`."""

    output_cls: Any = Field(exclude=True)

    _out: OutputType[Any] | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._out = output_type(self.output_cls)  # an unusable type fails here, not on the first call

    @property
    def out(self) -> OutputType[Any]:
        """The adapted ``output_cls``."""
        if self._out is None:
            self._out = output_type(self.output_cls)
        return self._out

    @classmethod
    def class_name(cls) -> str:
        return "structured_llm"

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata.model_copy(update={"is_chat_model": True})

    def _steps(self, call: LLMCall) -> Steps[Any]:
        return structured_steps(self.llm, self.out, _conversation(call), self.pydantic_program_mode, call.kwargs)

    def _call(self, call: LLMCall) -> Response:
        with operation("structured_llm", self.callback_manager, output_cls=self.out.name):
            return _reply(self.out, run_steps(self._steps(call), self.llm.chat), call)

    async def _acall(self, call: LLMCall) -> Response:
        with operation("structured_llm", self.callback_manager, output_cls=self.out.name):
            return _reply(self.out, await arun_steps(self._steps(call), self.llm.achat), call)

    def _partials(self, call: LLMCall) -> tuple[Any, LLMCall]:
        mode, conversation, mode_kwargs = stream_request(
            self.llm, self.out, _conversation(call), self.pydantic_program_mode
        )
        return mode, LLMCall.chat(conversation, {**mode_kwargs, **call.kwargs})

    def _stream(self, call: LLMCall) -> Generator[Response, None, None]:
        mode, request = self._partials(call)
        chunks: Iterator[ChatResponse] = self.llm.stream_chat(request.messages, **request.kwargs)
        for partial in iter_partials(chunks, self.out, mode):
            yield _reply(self.out, partial, call)

    async def _astream(self, call: LLMCall) -> AsyncGenerator[Response, None]:
        mode, request = self._partials(call)
        chunks: AsyncIterator[ChatResponse] = await self.llm.astream_chat(request.messages, **request.kwargs)
        return _areplies(self.out, aiter_partials(chunks, self.out, mode), call)


async def _areplies(
    out: OutputType[Any], partials: AsyncIterator[Any], call: LLMCall
) -> AsyncGenerator[Response, None]:
    async for partial in partials:
        yield _reply(out, partial, call)
