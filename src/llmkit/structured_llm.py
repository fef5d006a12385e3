"""StructuredLLM: an LLM whose chat replies carry a validated pydantic object.

Example:
    >>> from pydantic import BaseModel
    >>> from llmkit import MockLLM, ChatMessage
    >>> class Song(BaseModel):
    ...     title: str
    >>> sllm = MockLLM().as_structured_llm(Song)
    >>> sllm.chat([ChatMessage(role="user", content="A song")]).raw
    Song(title='string')
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmkit._steps import arun_steps, run_steps
from llmkit.llm import LLM
from llmkit.structured import aiter_partials, iter_partials, stream_request, structured_steps
from llmkit.types import ChatMessage, ChatResponse, LLMMetadata, MessageRole


def _reply(obj: BaseModel, delta: str | None = None) -> ChatResponse:
    text = obj.model_dump_json()
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=obj, delta=delta)


class StructuredLLM(LLM):
    """Wraps an LLM so that every chat answer is an ``output_cls`` instance (in ``raw``; the text is its JSON)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llm: LLM = Field(exclude=True)
    output_cls: type[BaseModel] = Field(exclude=True)

    @classmethod
    def class_name(cls) -> str:
        return "structured_llm"

    @property
    def metadata(self) -> LLMMetadata:
        return self.llm.metadata.model_copy(update={"is_chat_model": True})

    def _steps(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Any:
        return structured_steps(self.llm, self.output_cls, messages, self.llm.pydantic_program_mode, kwargs)

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return _reply(run_steps(self._steps(messages, kwargs), self.llm.chat))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return _reply(await arun_steps(self._steps(messages, kwargs), self.llm.achat))

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[ChatResponse]:
        mode, conversation, mode_kwargs = stream_request(
            self.llm, self.output_cls, messages, self.llm.pydantic_program_mode
        )
        chunks = self.llm.stream_chat(conversation, **mode_kwargs, **kwargs)
        for partial in iter_partials(chunks, self.output_cls, mode):
            yield _reply(partial)

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        mode, conversation, mode_kwargs = stream_request(
            self.llm, self.output_cls, messages, self.llm.pydantic_program_mode
        )
        chunks = await self.llm.astream_chat(conversation, **mode_kwargs, **kwargs)
        async for partial in aiter_partials(chunks, self.output_cls, mode):
            yield _reply(partial)
