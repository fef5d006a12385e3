"""WrapperLLM: a wrapper adding one line of behaviour passes the whole LLM conformance suite around a scripted
model, a completion-only model and the embedded model; the inner LLM's routing, prompts and callbacks apply once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import pytest
from pydantic import BaseModel

from llmkit import ChatMessage, FunctionTool, LLMCall, PromptTemplate, ScriptedLLM, WrapperLLM
from llmkit.callbacks import CallbackHandler, CallbackManager, LLMEvent
from llmkit.errors import ConfigurationError
from llmkit.llm import LLM
from llmkit.providers.function import FunctionLLM
from llmkit.wrapper import Response

HI = [ChatMessage(role="user", content="Say hello to Ada")]


class Counting(WrapperLLM):
    """The wrapper under test: one line of behaviour per hook (it counts the calls it sees)."""

    seen: list[str] = []

    def _call(self, call: LLMCall) -> Response:
        self.seen.append(call.endpoint)
        return super()._call(call)

    async def _acall(self, call: LLMCall) -> Response:
        self.seen.append(call.endpoint)
        return await super()._acall(call)

    def _stream(self, call: LLMCall) -> Generator[Response, None, None]:
        self.seen.append(call.endpoint)
        return super()._stream(call)

    async def _astream(self, call: LLMCall) -> AsyncGenerator[Response, None]:
        self.seen.append(call.endpoint)
        return await super()._astream(call)


class Person(BaseModel):
    name: str


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def completion_answer(prompt: str, kwargs: dict[str, Any]) -> str:
    """A completion-only model: JSON when asked for a schema, a ReAct action when given tools, else an echo."""
    if "JSON schema" in prompt:
        return '{"name": "Ada"}'
    if "Action Input" in prompt:
        return 'Action: add\nAction Input: {"a": 2, "b": 3}'
    return f"echo: {prompt[-40:]}"


def conformance(llm: LLM) -> dict[str, Any]:
    """Everything observable of one LLM, through every public entry point."""
    prompt = PromptTemplate("Give a person named {name}.")

    async def async_part() -> dict[str, Any]:
        return {
            "achat": (await llm.achat(HI)).message.content,
            "acomplete": (await llm.acomplete("Say hello")).text,
            "astream_chat": [c.delta async for c in await llm.astream_chat(HI)],
            "astream_complete": [c.delta async for c in await llm.astream_complete("Say hello")],
            "astructured": (await llm.astructured_predict(Person, prompt, name="Ada")).model_dump(),
            "apredict_and_call": (await llm.apredict_and_call([FunctionTool.from_defaults(add)], "2 + 3?")).response,
        }

    return {
        "chat": llm.chat(HI).message.content,
        "complete": llm.complete("Say hello").text,
        "stream_chat": [c.delta for c in llm.stream_chat(HI)],
        "stream_complete": [c.delta for c in llm.stream_complete("Say hello")],
        "predict": llm.predict(PromptTemplate("Say {what}"), what="hello"),
        "structured": llm.structured_predict(Person, prompt, name="Ada").model_dump(),
        "predict_and_call": llm.predict_and_call([FunctionTool.from_defaults(add)], "2 + 3?").response,
        "metadata": llm.metadata.model_dump(),
        "capabilities": llm.capabilities,
        **asyncio.run(async_part()),
    }


MODELS: dict[str, Callable[[], LLM]] = {
    "mock": lambda: ScriptedLLM(system_prompt="Be brief."),
    "completion-only": lambda: FunctionLLM(complete_fn=completion_answer, system_prompt="Be brief."),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_wrapper_passes_conformance(name: str) -> None:
    bare, inner = MODELS[name](), MODELS[name]()
    wrapped = Counting(llm=inner)
    assert conformance(wrapped) == conformance(bare)
    assert len(wrapped.seen) == 13  # every call went through a hook, once
    if isinstance(bare, FunctionLLM) and isinstance(inner, FunctionLLM):
        assert inner.calls == bare.calls  # byte for byte the same requests reached the model


@pytest.mark.slow
def test_wrapper_passes_conformance_on_the_embedded_model(local_llm: LLM) -> None:
    assert conformance(Counting(llm=local_llm)) == conformance(local_llm)


def test_completion_only_model_gets_the_prompt_itself() -> None:
    """The bug a hand-written wrapper had: complete("X") reached a completion-only model as "user: X\\nassistant: "."""
    inner = FunctionLLM(complete_fn=lambda prompt, kwargs: "ok")
    Counting(llm=inner).complete("X")
    asyncio.run(Counting(llm=inner).acomplete("Y"))
    assert [prompt for prompt, _ in inner.calls] == ["X", "Y"]


class Events(CallbackHandler):
    def __init__(self) -> None:
        self.log: list[str] = []

    def on_llm_end(self, event: LLMEvent) -> None:
        self.log.append(f"end {event.kind}")

    def on_llm_error(self, event: LLMEvent) -> None:
        self.log.append(f"error {event.kind}")


def test_inner_callbacks_fire_once_per_call() -> None:
    events = Events()
    wrapped = Counting(llm=ScriptedLLM(callback_manager=CallbackManager([events])))
    wrapped.chat(HI)
    list(wrapped.stream_complete("a b"))
    wrapped.structured_predict(Person, PromptTemplate("x"))
    assert events.log == ["end chat", "end complete", "end chat"]


def test_wrapper_forwards_capabilities_and_refusals() -> None:
    from llmkit.structured import PydanticProgramMode

    inner = ScriptedLLM()
    wrapped = Counting(llm=inner)
    assert wrapped.capabilities == inner.capabilities
    wrapped.refuse_structured_mode(PydanticProgramMode.JSON_SCHEMA)
    assert PydanticProgramMode.JSON_SCHEMA not in inner.capabilities.structured_modes
    assert wrapped.capabilities == inner.capabilities


def test_prompt_settings_on_the_wrapper_are_refused() -> None:
    with pytest.raises((ConfigurationError, ValueError), match="wrapped LLM"):
        Counting(llm=ScriptedLLM(), system_prompt="ignored?")


def test_structured_llm_on_completion_only_model() -> None:
    inner = FunctionLLM(complete_fn=completion_answer)
    sllm = inner.as_structured_llm(Person)
    assert sllm.chat(HI).raw == Person(name="Ada")
    assert sllm.complete("Ada").text == '{"name":"Ada"}'
    assert [c.raw for c in sllm.stream_chat(HI)][-1] == Person(name="Ada")
