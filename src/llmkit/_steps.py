"""Write multi-call logic once, run it sync or async.

A *step function* is a generator that yields ``(messages, kwargs)`` chat requests and receives each
:class:`~llmkit.types.ChatResponse` (or has the call's exception thrown into it); its return value is the result.
:func:`run_steps` drives it with ``llm.chat``, :func:`arun_steps` with ``await llm.achat``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, TypeVar

from llmkit.types import ChatMessage, ChatResponse

T = TypeVar("T")
ChatRequest = tuple[Sequence[ChatMessage], dict[str, Any]]
Steps = Generator[ChatRequest, ChatResponse, T]


def run_steps(steps: Steps[T], chat: Callable[..., ChatResponse]) -> T:
    """Drive a step generator with a synchronous chat function."""
    try:
        messages, kwargs = next(steps)
        while True:
            try:
                response = chat(messages, **kwargs)
            except Exception as exc:
                messages, kwargs = steps.throw(exc)
            else:
                messages, kwargs = steps.send(response)
    except StopIteration as done:
        result: T = done.value
        return result


async def arun_steps(steps: Steps[T], achat: Callable[..., Awaitable[ChatResponse]]) -> T:
    """Drive a step generator with an async chat function."""
    try:
        messages, kwargs = next(steps)
        while True:
            try:
                response = await achat(messages, **kwargs)
            except Exception as exc:
                messages, kwargs = steps.throw(exc)
            else:
                messages, kwargs = steps.send(response)
    except StopIteration as done:
        result: T = done.value
        return result
