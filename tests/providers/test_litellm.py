"""LiteLLM: real ``litellm`` calls (``openai/MODEL`` with ``api_base``) to the llama.cpp server running the embedded
model, and to the fault-injecting server for retries and error mapping."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import httpx
import pytest
from pydantic import BaseModel

from llmkit import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ChatMessage,
    FunctionTool,
    LiteLLM,
    PromptTemplate,
    RateLimitError,
    ServerError,
    create,
)
from tests.conftest import FAST_RETRIES
from tests.servers.fault import FaultServer

pytest.importorskip("litellm", reason="the 'litellm' extra is not installed: pip install 'llmkit[litellm]'")

Q = [ChatMessage(role="user", content="What is the capital of France?")]


@pytest.fixture(scope="module")
def llm(llama_server: str) -> LiteLLM:
    return LiteLLM(
        model="openai/smollm2",
        api_base=llama_server,
        api_key="none",
        temperature=0,
        max_tokens=24,
        is_function_calling_model=True,
    )


def test_seed_schema_fields() -> None:
    schema = LiteLLM.model_json_schema()
    assert schema["title"] == "LiteLLM"
    props = schema["properties"]
    for name, title in (("model", "Model"), ("temperature", "Temperature"), ("max_retries", "Max Retries")):
        assert props[name]["title"] == title
    assert props["additional_kwargs"]["type"] == "object"
    assert "model" in schema["required"]
    assert LiteLLM.class_name() == "litellm_llm"


def test_construction_and_import_are_offline_and_lazy() -> None:
    code = (
        "import sys, llmkit; llm = llmkit.LiteLLM(model='openai/x', api_key='sk-secret');"
        "assert 'litellm' not in sys.modules; assert 'sk-secret' not in repr(llm); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_every_method_against_the_llama_server(llm: LiteLLM) -> None:
    response = llm.chat(Q)
    assert (response.content or "").strip()
    assert response.usage is not None
    assert response.usage.completion_tokens
    assert llm.complete("The capital of France is").text.strip()
    chunks = list(llm.stream_chat(Q))
    assert len(chunks) > 2
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].content
    assert "".join(c.delta or "" for c in llm.stream_complete("Say hi")).strip()

    async def run() -> tuple[str, str, str, str]:
        chat = await llm.achat(Q)
        done = await llm.acomplete("Hello")
        streamed = "".join([c.delta or "" async for c in await llm.astream_chat(Q)])
        streamed_completion = "".join([c.delta or "" async for c in await llm.astream_complete("Hi")])
        return chat.content or "", done.text, streamed, streamed_completion

    assert all(text.strip() for text in asyncio.run(run()))


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class City(BaseModel):
    name: str
    country: str


def test_tools_and_structured_output(llm: LiteLLM) -> None:
    response = llm.chat([ChatMessage(role="user", content="What is 2 + 3?")], tools=[add], tool_choice="add")
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "add"
    assert set(selection.tool_kwargs) == {"a", "b"}
    streamed = list(llm.stream_chat([ChatMessage(role="user", content="Add 2 and 3")], tools=[add], tool_choice="add"))
    (streamed_selection,) = llm.get_tool_calls_from_response(streamed[-1])
    assert streamed_selection.tool_name == "add"
    result = llm.predict_and_call([FunctionTool.from_defaults(add)], "What is 2 + 3?", tool_choice="add")
    assert result.sources
    assert result.sources[0].tool_name == "add"
    city = llm.structured_predict(City, PromptTemplate("Name the capital of {country}."), country="France")
    assert isinstance(city, City)


def test_metadata_from_litellm_and_fallback() -> None:
    known = LiteLLM(model="gpt-4o-mini")
    assert known.metadata.context_window >= 100_000
    assert known.metadata.is_function_calling_model
    unknown = LiteLLM(model="openai/no-such-model-anywhere", max_tokens=32)
    assert unknown.metadata.context_window == 3900
    assert unknown.metadata.num_output == 32
    assert not unknown.metadata.is_function_calling_model


# -- retries and errors against the fault server -----------------------------------------------------------------------


def fault_llm(server: FaultServer, scenario: str, **kwargs: object) -> tuple[LiteLLM, str]:
    test_id = uuid.uuid4().hex
    llm = LiteLLM(
        model=f"openai/{scenario}",
        api_base=server.url,
        api_key="sk-test",
        additional_kwargs={"extra_headers": {"x-test-id": test_id}},
        **kwargs,  # type: ignore[arg-type]
    )
    return llm, test_id


def attempts(server: FaultServer, test_id: str) -> int:
    return len(httpx.get(server.url.replace("/v1", f"/_attempts/{test_id}")).json())


@pytest.mark.parametrize(("retries", "expected"), [(0, 1), (1, 2), (2, 3)])
def test_max_retries_means_what_it_says(fault_server: FaultServer, retries: int, expected: int) -> None:
    llm, test_id = fault_llm(fault_server, "always-503", max_retries=retries, retry_policy=FAST_RETRIES)
    with pytest.raises(ServerError):
        llm.chat(Q)
    assert attempts(fault_server, test_id) == expected


def test_retry_after_is_honoured_and_errors_are_typed(fault_server: FaultServer) -> None:
    llm, test_id = fault_llm(fault_server, "429-then-ok", max_retries=1)
    assert llm.chat(Q).content == "ok"
    assert attempts(fault_server, test_id) == 2
    limited, _ = fault_llm(fault_server, "429-then-ok", max_retries=0)
    with pytest.raises(RateLimitError) as info:
        limited.chat(Q)
    assert info.value.retry_after == pytest.approx(0.3)
    for scenario, error in (("401", AuthenticationError), ("400", BadRequestError)):
        failing, failing_id = fault_llm(fault_server, scenario, max_retries=2)
        with pytest.raises(error):
            failing.chat(Q)
        assert attempts(fault_server, failing_id) == 1  # 4xx is never retried
    recovering, recovering_id = fault_llm(fault_server, "5xx-then-ok", max_retries=3)
    assert asyncio.run(recovering.achat(Q)).content == "ok"
    assert attempts(fault_server, recovering_id) == 4


def test_connection_refused_is_a_connection_error() -> None:
    llm = LiteLLM(model="openai/x", api_base="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0)
    with pytest.raises(APIConnectionError):
        llm.chat(Q)


def test_create_spec(llama_server: str) -> None:
    llm = create("litellm/openai/smollm2", api_base=llama_server, api_key="none", max_tokens=8)
    assert isinstance(llm, LiteLLM)
    assert llm.model == "openai/smollm2"


def test_litellm_keywords_are_kept_and_reach_litellm(fault_server: FaultServer) -> None:
    """Issue #14.6: keywords LiteLLM has no field for (``custom_llm_provider``, ``extra_headers``) are kept in
    ``additional_kwargs`` and passed to litellm: a model named without its provider prefix only reaches the server
    through ``custom_llm_provider="openai"``, and the header only arrives through ``extra_headers``."""
    test_id = uuid.uuid4().hex
    llm = LiteLLM(
        model="ok",
        custom_llm_provider="openai",
        extra_headers={"x-test-id": test_id},
        api_base=fault_server.url,
        api_key="sk-test",
        max_retries=0,
    )
    assert llm.additional_kwargs == {"custom_llm_provider": "openai", "extra_headers": {"x-test-id": test_id}}
    assert llm.chat("hi").message.content == "ok"
    assert attempts(fault_server, test_id) == 1
