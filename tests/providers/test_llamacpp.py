"""The embedded model: real llama.cpp inference, loaded once for the session."""

from __future__ import annotations

import asyncio
import threading
import time
from enum import StrEnum
from pathlib import Path

import pytest
from pydantic import BaseModel

from llmkit import ChatMessage, ConfigurationError, FunctionTool, LlamaCpp, PromptTemplate, create
from llmkit.providers.llamacpp import find_model

Q = [ChatMessage(role="user", content="What is the capital of France?")]


def test_model_discovery(model_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LLMKIT_MODEL", raising=False)
    assert find_model() == model_path
    monkeypatch.setenv("LLMKIT_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(ConfigurationError, match="LLMKIT_MODEL"):
        find_model()
    with pytest.raises(ConfigurationError, match="does not exist"):
        find_model(str(tmp_path / "nope.gguf"))


def test_chat_metadata_usage_logprobs(local_llm: LlamaCpp, model_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="logprobs=True"):
        local_llm.chat(Q, logprobs=True)
    with_logprobs = LlamaCpp(model_path=str(model_path), logprobs=True, max_tokens=8, temperature=0)
    response = with_logprobs.chat(Q)
    assert (response.content or "").strip()
    assert response.usage
    assert response.usage.prompt_tokens
    assert response.usage.completion_tokens
    assert response.logprobs
    assert len(response.logprobs) == response.usage.completion_tokens
    assert local_llm.metadata.context_window == 2048
    assert local_llm.metadata.model_name


def test_completion_model_mode(model_path: Path) -> None:
    llm = LlamaCpp(model_path=str(model_path), is_chat_model=False, max_tokens=8, temperature=0)
    response = llm.complete("The capital of France is")
    assert response.text
    assert response.usage
    assert response.usage.completion_tokens
    assert llm.model is not None


def test_model_loaded_once_per_process(local_llm: LlamaCpp, model_path: Path) -> None:
    other = create("local", model_path=str(model_path), temperature=0.0, max_tokens=4, seed=7)
    assert isinstance(other, LlamaCpp)
    assert other.model is local_llm.model


def test_stream_deltas_and_usage(local_llm: LlamaCpp) -> None:
    chunks = list(local_llm.stream_chat(Q))
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].content
    assert chunks[-1].usage
    assert chunks[-1].usage.completion_tokens


def test_breaking_out_of_a_stream_releases_the_model(local_llm: LlamaCpp) -> None:
    for index, _ in enumerate(local_llm.stream_complete("Tell me a long story.", max_tokens=200)):
        if index == 2:
            break
    assert local_llm.model.lock.acquire(timeout=5)
    local_llm.model.lock.release()


async def test_async_never_blocks_the_loop_and_cancels(local_llm: LlamaCpp) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    response = await local_llm.achat(Q)
    assert response.content
    assert ticks > 3
    gen = await local_llm.astream_chat([ChatMessage(role="user", content="Write a long story.")], max_tokens=400)
    started = time.monotonic()
    count = 0
    async for _ in gen:
        count += 1
        if count == 3:
            break
    await gen.aclose()
    assert time.monotonic() - started < 3
    assert local_llm.model.lock.acquire(timeout=2)  # generation really stopped
    local_llm.model.lock.release()
    task.cancel()


def test_concurrent_threads_and_tasks(local_llm: LlamaCpp) -> None:
    results: list[str] = []

    def work() -> None:
        results.append(local_llm.complete("Say hello", max_tokens=6).text)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(results)

    async def many() -> list[str]:
        answers = await asyncio.gather(*(local_llm.acomplete("Say hello", max_tokens=6) for _ in range(4)))
        return [a.text for a in answers]

    assert all(asyncio.run(many()))


class Mood(StrEnum):
    HAPPY = "happy"
    SAD = "sad"


class Person(BaseModel):
    name: str
    age: int


class Address(BaseModel):
    street: str
    city: str


class Profile(BaseModel):
    name: str
    mood: Mood
    tags: list[str]
    address: Address
    nickname: str | None = None


SCHEMAS: list[tuple[type[BaseModel], str]] = [
    (Person, "Invent a person called {x}."),
    (Address, "Give an address in {x}."),
    (Profile, "Describe a user profile for someone from {x}."),
]


@pytest.mark.parametrize(("output_cls", "template"), SCHEMAS)
def test_grammar_structured_output_validates(local_llm: LlamaCpp, output_cls: type[BaseModel], template: str) -> None:
    for topic in ("Paris", "Tokyo", "Lima"):
        result = local_llm.structured_predict(output_cls, PromptTemplate(template), x=topic)
        assert isinstance(result, output_cls)


TOPICS = [
    "Paris",
    "Tokyo",
    "Lima",
    "Oslo",
    "Cairo",
    "Delhi",
    "Quito",
    "Rome",
    "Seoul",
    "Accra",
    "Berlin",
    "Madrid",
    "Dublin",
    "Lagos",
    "Hanoi",
    "Nairobi",
    "Lisbon",
    "Prague",
    "Vienna",
    "Havana",
    "Athens",
    "Bogota",
    "Manila",
    "Dakar",
    "Riga",
    "Sofia",
    "Kyiv",
    "Doha",
    "Amman",
    "Minsk",
]


@pytest.mark.slow
@pytest.mark.parametrize(("output_cls", "template"), SCHEMAS)
def test_grammar_validity_30_prompts_each(local_llm: LlamaCpp, output_cls: type[BaseModel], template: str) -> None:
    for topic in TOPICS:
        result = local_llm.structured_predict(output_cls, PromptTemplate(template), x=topic)
        assert isinstance(result, output_cls)


def test_stream_structured_partials(local_llm: LlamaCpp) -> None:
    outputs = list(local_llm.stream_structured_predict(Person, PromptTemplate("Invent a person called {x}."), x="Ada"))
    assert len(outputs) > 1
    assert isinstance(outputs[-1], Person)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


async def test_predict_and_call_end_to_end(local_llm: LlamaCpp) -> None:
    tools = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(multiply)]
    result = local_llm.predict_and_call(tools, "What is 3 + 4? Use the add tool.")
    assert result.sources
    assert result.sources[0].tool_name in ("add", "multiply")
    assert result.response == str(result.sources[0].raw_output)
    async_result = await local_llm.apredict_and_call(tools[:1], "Add 2 and 2.")
    assert async_result.sources[0].tool_name == "add"
