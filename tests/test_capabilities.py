"""Capabilities as declared data, the refusal rule of structured output, and stream events at their edges."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from llmkit import ChatMessage, LlamaCpp, PromptTemplate, ScriptedLLM
from llmkit.callbacks import CallbackHandler, CallbackManager, LLMEvent
from llmkit.capabilities import Capabilities
from llmkit.errors import BadRequestError
from llmkit.llm import LLM
from llmkit.providers.function import FunctionLLM
from llmkit.providers.gradient import GradientBaseModelLLM
from llmkit.structured import PydanticProgramMode
from llmkit.types import ChatResponse, LLMMetadata, text_message

JSON_SCHEMA, FUNCTION = PydanticProgramMode.JSON_SCHEMA, PydanticProgramMode.FUNCTION


class Person(BaseModel):
    name: str


def test_capabilities_need_a_family() -> None:
    with pytest.raises(ValueError, match="at least one family"):
        Capabilities(chat=False, completion=False)


def test_providers_declare_their_capabilities(model_path: Any) -> None:
    assert GradientBaseModelLLM(base_model_slug="llama3-8b-chat", access_token="t", workspace_id="w").capabilities == (
        Capabilities(chat=False, completion=True, streaming=False)
    )
    local = LlamaCpp(model_path=str(model_path)).capabilities
    assert (local.chat, local.completion, local.tool_calling) == (True, True, True)
    assert local.structured_modes == {PydanticProgramMode.GRAMMAR, FUNCTION}


class OwnModel(LLM):
    """A user's own model that declares nothing: its capabilities come from the primitives it implements."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=False)

    def _complete(self, prompt: str, **kwargs: Any) -> Any:
        from llmkit.types import CompletionResponse

        return CompletionResponse(text=prompt.upper())


def test_undeclared_subclass_gets_capabilities_from_its_primitives() -> None:
    model = OwnModel()
    assert model.capabilities == Capabilities(chat=False, completion=True, streaming=False)
    assert model.chat([ChatMessage(role="user", content="hi")]).message.content == "USER: HI\nASSISTANT: "


def test_routing_follows_a_field_set_after_use() -> None:
    """Providers whose routing follows from their fields work it out once; setting a field works it out again."""
    llm = FunctionLLM(complete_fn=lambda prompt, kwargs: f"completed {prompt[-12:]!r}")
    assert llm.chat([ChatMessage(role="user", content="hi")]).message.content.startswith("completed")
    llm.chat_fn = lambda messages, kwargs: "chatted"
    assert llm.chat([ChatMessage(role="user", content="hi")]).message.content == "chatted"
    assert llm.complete("hi").text == "chatted"  # a chat model now: completions go to chat
    llm.chat_fn = None
    assert llm.complete("hi").text.startswith("completed")


def test_events_report_fields_set_after_use() -> None:
    """What events report from an LLM's fields (model, parameters) is worked out once, and again after a set."""
    import httpx

    from llmkit import OpenAILike

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]})

    seen: list[tuple[str | None, dict[str, Any]]] = []

    class Recorder(CallbackHandler):
        def on_llm_start(self, event: LLMEvent) -> None:
            seen.append((event.model, dict(event.parameters)))

    llm = OpenAILike(
        model="first", api_base="http://127.0.0.1:9/v1", temperature=0.5, callback_manager=CallbackManager([Recorder()])
    ).with_http_clients(httpx.Client(transport=httpx.MockTransport(answer)))
    hi = [ChatMessage(role="user", content="hi")]
    llm.chat(hi)
    llm.chat(hi, temperature=None, top_p=0.9)  # a call's own parameters over the fields'
    llm.model, llm.temperature = "second", 0.7
    llm.chat(hi)
    copy = llm.model_copy(update={"model": "third"})  # fields set without __setattr__, private state shared
    copy.chat(hi)
    llm.chat(hi)
    assert seen == [
        ("first", {"temperature": 0.5}),
        ("first", {"top_p": 0.9}),
        ("second", {"temperature": 0.7}),
        ("third", {"temperature": 0.7}),
        ("second", {"temperature": 0.7}),
    ]


class SchemaService(FunctionLLM):
    """A chat service that declares JSON-schema output."""

    def _capabilities(self) -> Capabilities:
        return Capabilities(structured_modes=frozenset({JSON_SCHEMA, FUNCTION}), tool_calling=True)


def _bad_request(message: str) -> BadRequestError:
    return BadRequestError(message, status_code=400, provider="test")


def test_an_unrelated_400_disables_no_mode() -> None:
    def too_long(messages: list[Any], kwargs: dict[str, Any]) -> str:
        raise _bad_request("context length exceeded")

    llm = SchemaService(chat_fn=too_long, function_calling=True)
    with pytest.raises(BadRequestError, match="context length"):
        llm.structured_predict(Person, PromptTemplate("x"))
    assert llm.capabilities.structured_modes == {JSON_SCHEMA, FUNCTION}


def test_a_refused_mode_is_remembered_once_another_mode_answers() -> None:
    def no_schemas(messages: list[Any], kwargs: dict[str, Any]) -> ChatResponse | str:
        if "json_schema" in kwargs:
            raise _bad_request("response_format json_schema is not supported")
        call = {"id": "c1", "type": "function", "function": {"name": "Person", "arguments": '{"name": "Ada"}'}}
        return ChatResponse(message=text_message("", {"tool_calls": [call]}))

    llm = SchemaService(chat_fn=no_schemas, function_calling=True)
    assert llm.structured_predict(Person, PromptTemplate("x")) == Person(name="Ada")
    assert llm.capabilities.structured_modes == {FUNCTION}
    assert llm.structured_predict(Person, PromptTemplate("x")) == Person(name="Ada")
    assert len(llm.calls) == 3  # the second prediction no longer tries the refused mode


class Events(CallbackHandler):
    def __init__(self) -> None:
        self.log: list[str] = []

    def on_llm_end(self, event: LLMEvent) -> None:
        self.log.append(f"end {event.response.delta if event.response else None}")

    def on_llm_error(self, event: LLMEvent) -> None:
        self.log.append(f"error {type(event.error).__name__}")


def test_breaking_out_of_a_stream_ends_its_event() -> None:
    events = Events()
    llm = ScriptedLLM(callback_manager=CallbackManager([events]))
    for chunk in llm.stream_complete("one two three"):
        if chunk.delta.strip() == "two":
            break
    assert events.log == ["end two "]


class SlowSyncStream(FunctionLLM):
    """A provider whose only stream is synchronous and blocks between chunks."""

    def _stream_chat(self, messages: Sequence[Any], **kwargs: Any) -> Iterator[ChatResponse]:
        for word in ["a", "b", "c"]:
            time.sleep(0.3)
            yield ChatResponse(message=text_message(word), delta=word)


async def test_cancelling_a_thread_pumped_stream_cancels() -> None:
    events = Events()
    llm = SlowSyncStream(chat_fn=lambda messages, kwargs: "", callback_manager=CallbackManager([events]))
    before = threading.active_count()

    async def consume() -> list[str]:
        return [chunk.delta or "" async for chunk in await llm.astream_chat([ChatMessage(role="user", content="x")])]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.45)  # inside the second chunk's sleep
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events.log == ["error CancelledError"]
    await asyncio.sleep(0.5)  # the worker finishes its step and closes the generator there
    assert threading.active_count() <= before + 1
