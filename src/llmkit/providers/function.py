"""FunctionLLM: a model whose every answer a Python function decides, for testing code that uses an LLM.

Give ``chat_fn`` for a chat model, ``complete_fn`` for a completion-only model, or both. Each function receives what
the model would receive (the prepared messages, or the formatted prompt) and the call's keyword arguments, and
returns the answer's text or a whole response. Streams deliver the text word by word. Every request is kept in
``calls`` (the latest 1,000), so a test can assert exactly what reached the model.

Example:
    >>> from llmkit import ChatMessage
    >>> from llmkit.providers.function import FunctionLLM
    >>> llm = FunctionLLM(complete_fn=lambda prompt, kwargs: f"<{prompt}>")
    >>> llm.complete("hi").text
    '<hi>'
    >>> [chunk.delta for chunk in llm.stream_complete("a b")]
    ['<a ', 'b>']
    >>> llm.calls[-1]
    ('a b', {})
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, model_validator

from llmkit.capabilities import Capabilities
from llmkit.errors import ConfigurationError
from llmkit.llm import LLM
from llmkit.structured import PydanticProgramMode
from llmkit.types import ChatResponse, CompletionResponse, LLMMetadata, text_message

ChatFunction = Callable[[list[Any], dict[str, Any]], "str | ChatResponse"]
CompleteFunction = Callable[[str, dict[str, Any]], "str | CompletionResponse"]

_WORDS = re.compile(r"\s*\S+\s*|\s+")


def _pieces(text: str) -> list[str]:
    return _WORDS.findall(text) or [""]


class FunctionLLM(LLM):
    """An LLM answered by ``chat_fn(messages, kwargs)`` and/or ``complete_fn(prompt, kwargs)``.

    Args:
        chat_fn: answers chat calls (a chat model); returns text or a ``ChatResponse``.
        complete_fn: answers completion calls (a completion model); returns text or a ``CompletionResponse``.
        function_calling: the model makes native tool calls (``chat_fn`` returns them in
            ``message.additional_kwargs["tool_calls"]``), so structured output may use ``FUNCTION`` mode.
        context_window: reported in ``metadata``.
    """

    _derived_from_fields: ClassVar[bool] = True

    chat_fn: ChatFunction | None = Field(default=None, exclude=True)
    complete_fn: CompleteFunction | None = Field(default=None, exclude=True)
    function_calling: bool = False
    context_window: int = 4096

    _calls: deque[tuple[Any, dict[str, Any]]] = PrivateAttr(default_factory=lambda: deque(maxlen=1000))

    @classmethod
    def class_name(cls) -> str:
        return "FunctionLLM"

    def _provider_name(self) -> str:
        return "function"

    @model_validator(mode="after")
    def _needs_a_function(self) -> FunctionLLM:
        if self.chat_fn is None and self.complete_fn is None:
            raise ConfigurationError("FunctionLLM needs chat_fn (a chat model) or complete_fn (a completion model)")
        return self

    @property
    def calls(self) -> list[tuple[Any, dict[str, Any]]]:
        """The requests received, oldest first: ``(messages or prompt, kwargs)``."""
        return list(self._calls)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            is_chat_model=self.chat_fn is not None,
            is_function_calling_model=self.function_calling,
            model_name="function",
        )

    def _capabilities(self) -> Capabilities:
        return Capabilities(
            chat=self.chat_fn is not None,
            completion=self.complete_fn is not None,
            structured_modes=frozenset({PydanticProgramMode.FUNCTION}) if self.function_calling else frozenset(),
            tool_calling=self.function_calling,
        )

    def _chat(self, messages: Sequence[Any], **kwargs: Any) -> ChatResponse:
        assert self.chat_fn is not None  # routing sends chat calls here only for a chat model
        self._calls.append((list(messages), kwargs))
        answer = self.chat_fn(list(messages), kwargs)
        return answer if isinstance(answer, ChatResponse) else ChatResponse(message=text_message(answer))

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        assert self.complete_fn is not None  # routing sends completion calls here only for a completion model
        self._calls.append((prompt, kwargs))
        answer = self.complete_fn(prompt, kwargs)
        return answer if isinstance(answer, CompletionResponse) else CompletionResponse(text=answer)

    def _stream_chat(self, messages: Sequence[Any], **kwargs: Any) -> Iterator[ChatResponse]:
        whole = self._chat(messages, **kwargs)
        text = ""
        for piece in _pieces(whole.message.content or ""):
            text += piece
            message = text_message(text, whole.message.additional_kwargs)
            yield whole.model_copy(update={"message": message, "delta": piece})

    def _stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[CompletionResponse]:
        whole = self._complete(prompt, **kwargs)
        text = ""
        for piece in _pieces(whole.text):
            text += piece
            yield whole.model_copy(update={"text": text, "delta": piece})


__all__ = ["FunctionLLM"]
