"""``CustomLLM``: LlamaIndex's way to add a model, and its callback decorators.

A subclass implements the public ``complete``, ``stream_complete`` and ``metadata``; chat, stream_chat and every
async form are derived from them (chat formats the messages with ``messages_to_prompt`` and calls
``complete(prompt, formatted=True)``), exactly as LlamaIndex's ``CustomLLM`` does.

Example:
    >>> from llmkit import CompletionResponse, CustomLLM, LLMMetadata
    >>> class Echo(CustomLLM):
    ...     @property
    ...     def metadata(self) -> LLMMetadata:
    ...         return LLMMetadata(model_name="echo")
    ...     @llm_completion_callback()
    ...     def complete(self, prompt: str, formatted: bool = False, **kwargs) -> CompletionResponse:
    ...         return CompletionResponse(text=prompt.upper())
    ...     def stream_complete(self, prompt: str, formatted: bool = False, **kwargs):
    ...         yield CompletionResponse(text=prompt.upper(), delta=prompt.upper())
    >>> Echo().chat("hi").message.content
    'USER: HI\\nASSISTANT: '
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar

from llmkit.llm import (
    LLM,
    NO_PROMPT,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    _athread_stream,
    _whole,
    require_prompt,
)
from llmkit.types import ChatMessage, ChatResponse, CompletionResponse, as_messages

F = TypeVar("F", bound=Callable[..., Any])


class CustomLLM(LLM):
    """A model of your own, written as LlamaIndex writes one: implement ``complete``, ``stream_complete`` (optional:
    without it a stream is the whole answer as one chunk) and ``metadata``; everything else is derived."""

    @classmethod
    def class_name(cls) -> str:
        return "custom_llm"

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        if type(self).complete is LLM.complete:
            raise NotImplementedError(f"{type(self).__name__} must implement complete(prompt, formatted=False, **kw)")
        return self.complete(prompt, formatted=True, **kwargs)

    def _stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[CompletionResponse]:
        if type(self).stream_complete is LLM.stream_complete:
            yield _whole(self._complete(prompt, **kwargs))
            return
        yield from self.stream_complete(prompt, formatted=True, **kwargs)

    async def acomplete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """``complete``, run in a worker thread (it is the subclass's blocking code)."""
        prompt = require_prompt(prompt)
        if type(self).complete is LLM.complete:
            return await super().acomplete(prompt, formatted, **kwargs)
        return await asyncio.to_thread(functools.partial(self.complete, prompt, formatted=formatted, **kwargs))

    async def astream_complete(
        self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """``stream_complete``, pumped from a worker thread."""
        prompt = require_prompt(prompt)
        if type(self).stream_complete is LLM.stream_complete:
            return await super().astream_complete(prompt, formatted, **kwargs)
        return _athread_stream(iter(self.stream_complete(prompt, formatted=formatted, **kwargs)))


def _prompt_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if args:
        return str(args[0])
    if "prompt" in kwargs:
        return require_prompt(kwargs["prompt"])
    return require_prompt(NO_PROMPT)


def llm_completion_callback() -> Callable[[F], F]:
    """Decorate a ``complete``/``stream_complete`` (sync or async) of your own LLM: a missing prompt is a
    ``ValueError`` and the call is reported to the LLM's callbacks, as LlamaIndex's decorator does."""

    def wrap(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapped(self: LLM, *args: Any, **kwargs: Any) -> Any:
                prompt = _prompt_of(args, kwargs)
                with self._event("complete", prompt, kwargs) as event:
                    result = await fn(self, *args, **kwargs)
                    if isinstance(result, CompletionResponse):
                        return event.done(result)
                    return result

            return awrapped  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapped(self: LLM, *args: Any, **kwargs: Any) -> Any:
            prompt = _prompt_of(args, kwargs)
            event = self._start("complete", prompt, kwargs)
            try:
                result = fn(self, *args, **kwargs)
            except Exception as exc:
                if event is not None:
                    self.callback_manager.error(event, exc)
                raise
            if isinstance(result, Iterator):
                return self._observed(event, result)
            if event is not None:
                self.callback_manager.end(event, result, getattr(result, "usage", None))
            return result

        return wrapped  # type: ignore[return-value]

    return wrap


def llm_chat_callback() -> Callable[[F], F]:
    """Decorate a ``chat``/``stream_chat`` (sync or async) of your own LLM: the messages are checked (a str is one
    user message) and the call is reported to the LLM's callbacks."""

    def wrap(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapped(self: LLM, messages: Sequence[ChatMessage], *args: Any, **kwargs: Any) -> Any:
                messages = as_messages(messages)
                with self._event("chat", messages, kwargs) as event:
                    result = await fn(self, messages, *args, **kwargs)
                    if isinstance(result, ChatResponse):
                        return event.done(result)
                    if isinstance(result, AsyncIterator):
                        return result
                    return result

            return awrapped  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapped(self: LLM, messages: Sequence[ChatMessage], *args: Any, **kwargs: Any) -> Any:
            messages = as_messages(messages)
            event = self._start("chat", messages, kwargs)
            try:
                result = fn(self, messages, *args, **kwargs)
            except Exception as exc:
                if event is not None:
                    self.callback_manager.error(event, exc)
                raise
            if isinstance(result, Iterator):
                return self._observed(event, result)
            if event is not None:
                self.callback_manager.end(event, result, getattr(result, "usage", None))
            return result

        return wrapped  # type: ignore[return-value]

    return wrap


__all__ = [
    "ChatResponseAsyncGen",
    "ChatResponseGen",
    "CompletionResponseGen",
    "CustomLLM",
    "llm_chat_callback",
    "llm_completion_callback",
]
