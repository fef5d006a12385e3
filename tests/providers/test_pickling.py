"""Every LLM pickles and deep-copies after use (runtime state is rebuilt lazily), or refuses with a typed error
saying why; a pickle never holds a secret in clear; secret-looking headers are redacted in repr."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from llmkit import (
    ChatMessage,
    ConfigurationError,
    GradientBaseModelLLM,
    GradientModelAdapterLLM,
    OpenAI,
    OpenAILike,
    PromptTemplate,
    ScriptedLLM,
    SerializationError,
    TokenCountingHandler,
)
from llmkit.callbacks import CallbackManager
from llmkit.llm import LLM
from llmkit.providers.aixplain import AiXplainLLM
from llmkit.providers.function import FunctionLLM
from llmkit.router import Router
from tests.servers import aixplain as aixplain_server
from tests.servers import gradient as gradient_server
from tests.servers.fault import chat_body
from tests.servers.recording import Recorded, RecordingHandler, RecordingServer, start

Q = [ChatMessage(role="user", content="hi")]
OPENAI_KEY = "sk-pickle-test-9f8e7d6c5b4a"


class _OpenAIHandler(RecordingHandler):
    def route(self, request: Recorded) -> None:
        self.reply(200, chat_body("pong"))


@pytest.fixture
def openai_server() -> Iterator[RecordingServer]:
    server = start(RecordingServer(_OpenAIHandler))
    yield server
    server.stop()


@pytest.fixture
def gradient() -> Iterator[gradient_server.GradientServer]:
    server = gradient_server.start()
    yield server
    server.stop()


@pytest.fixture
def aixplain() -> Iterator[aixplain_server.AiXplainServer]:
    server = aixplain_server.start()
    yield server
    server.stop()


async def _use(llm: LLM) -> None:
    """First use, sync and async: pools, locks and caches now exist."""
    assert llm.complete("hello").text
    assert (await llm.acomplete("hello")).text


async def _round_trips(llm: LLM, secret: str | None) -> None:
    await _use(llm)
    data = pickle.dumps(llm)
    if secret is not None:
        assert secret.encode() not in data
    for clone in (pickle.loads(data), copy.deepcopy(llm), llm.model_copy(deep=True)):
        assert type(clone) is type(llm)
        await _use(clone)  # runtime state rebuilt lazily, the key read again from the environment
    await _use(llm)  # the original is untouched


async def test_openai_with_key_from_environment(
    openai_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    llm = OpenAI(model="m", api_base=openai_server.url, allow_insecure_http=True)
    await _round_trips(llm, OPENAI_KEY)
    assert {r.headers["authorization"] for r in openai_server.requests} == {f"Bearer {OPENAI_KEY}"}


async def test_openai_like_without_key(openai_server: RecordingServer) -> None:
    await _round_trips(OpenAILike(model="m", api_base=openai_server.url), None)


def test_a_key_given_in_code_is_never_pickled() -> None:
    llm = OpenAI(model="m", api_key=OPENAI_KEY)
    with pytest.raises(SerializationError, match="put it in the environment variable OPENAI_API_KEY") as info:
        pickle.dumps(llm)
    assert OPENAI_KEY not in str(info.value)
    assert isinstance(info.value, TypeError)  # what pickle's callers (multiprocessing...) expect for "cannot pickle"
    clone = copy.deepcopy(llm)  # a deep copy stays in the process: it keeps the key
    assert clone.api_key is not None
    assert clone.api_key.get_secret_value() == OPENAI_KEY


def test_unpickling_without_the_environment_variable_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    data = pickle.dumps(OpenAI(model="m"))
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigurationError, match="set OPENAI_API_KEY in this process"):
        pickle.loads(data)


def test_secret_headers_are_redacted_in_repr_and_refused_by_pickle() -> None:
    headers = {"Authorization": "Bearer hdr-secret-1", "X-Api-Key": "hdr-secret-2", "Cookie": "hdr-secret-3",
               "X-Auth-Token": "hdr-secret-4", "X-Trace": "visible-value"}  # fmt: skip
    llm = OpenAILike(model="m", api_base="http://127.0.0.1:9/v1", default_headers=headers, api_key=OPENAI_KEY)
    shown = repr(llm) + str(llm)
    assert "hdr-secret" not in shown
    assert OPENAI_KEY not in shown
    assert "visible-value" in shown
    with pytest.raises(SerializationError, match="look like secrets"):
        pickle.dumps(llm.model_copy(update={"api_key": None}))


@pytest.mark.parametrize("adapter", [False, True], ids=["base-model", "adapter"])
async def test_gradient(
    gradient: gradient_server.GradientServer, monkeypatch: pytest.MonkeyPatch, adapter: bool
) -> None:
    monkeypatch.setenv("GRADIENT_ACCESS_TOKEN", gradient_server.TOKEN)
    monkeypatch.setenv("GRADIENT_WORKSPACE_ID", gradient_server.WORKSPACE)
    llm: LLM = (
        GradientModelAdapterLLM(model_adapter_id=gradient_server.ADAPTER_ID, host=gradient.url)
        if adapter
        else GradientBaseModelLLM(base_model_slug=gradient_server.BASE_SLUG, host=gradient.url)
    )
    await _round_trips(llm, gradient_server.TOKEN)
    with pytest.raises(SerializationError, match="GRADIENT_ACCESS_TOKEN"):
        pickle.dumps(GradientBaseModelLLM(base_model_slug="s", access_token="given-in-code", host=gradient.url))


async def test_aixplain(aixplain: aixplain_server.AiXplainServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_API_KEY", aixplain_server.KEY)
    llm = AiXplainLLM("direct", "Direct", url=aixplain.run_url, wait_time=0.01)
    await _round_trips(llm, aixplain_server.KEY)


def _echo(messages: list[Any], kwargs: dict[str, Any]) -> str:
    return f"echo {messages[-1].content}"


async def test_mock_function_and_counting_callbacks() -> None:
    counter = TokenCountingHandler()
    mock = ScriptedLLM(responses=["a", "b"], callback_manager=CallbackManager([counter]))
    await _round_trips(mock, None)
    await _round_trips(FunctionLLM(chat_fn=_echo), None)
    clone = pickle.loads(pickle.dumps(mock))
    handler = clone.callback_manager.handlers[0]
    assert isinstance(handler, TokenCountingHandler)
    assert handler.calls == counter.calls  # the counts travel; the lock is new
    clone.complete("x")
    assert handler.calls == counter.calls + 1


class City(BaseModel):
    name: str


async def test_wrappers_structured_llm_and_router(openai_server: RecordingServer) -> None:
    structured = ScriptedLLM().as_structured_llm(City)
    await _round_trips(structured, None)
    assert pickle.loads(pickle.dumps(structured)).chat(Q).raw == City(name="string")
    router = Router(groups={"a": [ScriptedLLM(), OpenAILike(model="m", api_base=openai_server.url)]})
    await _round_trips(router, None)
    clone = copy.deepcopy(router)
    assert clone.state is not router.state  # circuit breakers are per copy
    refused = Router(groups={"a": [OpenAI(model="m", api_key=OPENAI_KEY)]})
    with pytest.raises(SerializationError):
        pickle.dumps(refused)


def test_refused_modes_are_knowledge_and_travel() -> None:
    llm = ScriptedLLM()
    from llmkit import PydanticProgramMode

    llm.refuse_structured_mode(PydanticProgramMode.JSON_SCHEMA)
    for clone in (pickle.loads(pickle.dumps(llm)), copy.deepcopy(llm)):
        assert PydanticProgramMode.JSON_SCHEMA not in clone.capabilities.structured_modes
        assert clone.structured_predict(City, PromptTemplate("x")) == City(name="string")


def test_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmkit import LiteLLM

    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)  # litellm reads the provider's variable itself
    llm = LiteLLM(model="openai/m", api_base="http://127.0.0.1:9/v1")
    data = pickle.dumps(llm)
    assert OPENAI_KEY.encode() not in data
    assert pickle.loads(data).model == "openai/m"
    assert copy.deepcopy(llm).model == "openai/m"
    with pytest.raises(SerializationError, match="api_key"):
        pickle.dumps(LiteLLM(model="openai/m", api_key=OPENAI_KEY))


async def test_litellm_after_use(fault_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("litellm", reason="the 'litellm' extra is not installed: pip install 'llmkit[litellm]'")
    from llmkit import LiteLLM

    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    llm = LiteLLM(model="openai/ok", api_base=fault_server.url, max_retries=0)
    await _round_trips(llm, OPENAI_KEY)


async def test_embedded_model(local_llm: Any) -> None:
    llm = local_llm.model_copy(update={"max_tokens": 4})
    await _round_trips(llm, None)
    assert pickle.loads(pickle.dumps(llm)).model is llm.model  # the process-wide model is shared, not reloaded
