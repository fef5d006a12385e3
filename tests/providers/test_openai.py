"""OpenAILike against the real llama.cpp OpenAI-compatible server running the embedded model."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from llmkit import ChatMessage, FunctionTool, OpenAILike, PromptTemplate, create
from llmkit.types import ImageBlock, TextBlock
from llmkit.wire.openai import to_openai_message

Q = [ChatMessage(role="user", content="What is the capital of France?")]


@pytest.fixture(scope="module")
def llm(llama_server: str) -> OpenAILike:
    return OpenAILike(
        model="smollm2",
        api_base=llama_server,
        server="llama.cpp",
        max_tokens=24,
        temperature=0,
        is_function_calling_model=True,
    )


def test_chat_completion_and_usage(llm: OpenAILike) -> None:
    response = llm.chat(Q)
    assert (response.content or "").strip()  # a 135M model: the words vary, the shape does not
    assert response.additional_kwargs["finish_reason"] in ("stop", "length")
    assert response.usage is not None
    assert response.usage.prompt_tokens
    assert response.usage.completion_tokens
    legacy = OpenAILike(model="smollm2", api_base=llm.api_base, is_chat_model=False, max_tokens=8, temperature=0)
    assert legacy.complete("The capital of France is").text.strip()


def test_streaming_matches_and_ends(llm: OpenAILike) -> None:
    chunks = list(llm.stream_chat(Q))
    assert len(chunks) > 3
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].content


async def test_async_and_async_stream(llm: OpenAILike) -> None:
    assert ((await llm.achat(Q)).content or "").strip()
    gen = await llm.astream_complete("What is the capital of France?")
    texts = [c.text async for c in gen]
    assert len(texts) > 1
    assert texts[-1].strip()


def test_logprobs(llm: OpenAILike) -> None:
    response = llm.chat(Q, logprobs=True, top_logprobs=2)
    assert response.logprobs
    assert response.logprobs[0][0].logprob <= 0


class City(BaseModel):
    name: str
    country: str


def test_structured_output_json_schema_mode(llm: OpenAILike) -> None:
    city = llm.structured_predict(City, PromptTemplate("Name the capital of {country}."), country="France")
    assert isinstance(city, City)


def test_native_json_schema_refused_by_llama_cpp_falls_back(llama_server: str) -> None:
    generic = OpenAILike(
        model="smollm2", api_base=llama_server, max_tokens=48, temperature=0, is_function_calling_model=True
    )
    city = generic.structured_predict(City, PromptTemplate("Name the capital of {country}."), country="France")
    assert isinstance(city, City)
    assert generic._refused_modes  # the 500 "validation error" was read as a refusal and remembered


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_forced_tool_call(llm: OpenAILike) -> None:
    response = llm.chat(
        [ChatMessage(role="user", content="What is 2 + 3?")], tools=[FunctionTool.from_defaults(add)], tool_choice="add"
    )
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "add"
    assert set(selection.tool_kwargs) == {"a", "b"}


def test_models_listing_and_create(llm: OpenAILike, llama_server: str) -> None:
    assert llm.list_models()[0].endswith(".gguf")
    assert isinstance(create("openai-like/smollm2", api_base=llama_server), OpenAILike)


def test_content_parts_for_media() -> None:
    message = ChatMessage(role="user", blocks=[TextBlock(text="see"), ImageBlock(url="https://example.com/a.png")])
    assert to_openai_message(message)["content"] == [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]


def test_secret_key_never_printed() -> None:
    llm = OpenAILike(model="m", api_key="sk-secret-123")
    assert "sk-secret-123" not in repr(llm)
    assert "sk-secret-123" not in llm.model_dump_json()
