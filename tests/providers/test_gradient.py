"""Gradient LLMs against the protocol-faithful Gradient server: the wire format key for key, errors, retries."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from llmkit import (
    AuthenticationError,
    BadRequestError,
    ChatMessage,
    ConfigurationError,
    ContentFilterError,
    FunctionTool,
    GradientBaseModelLLM,
    GradientModelAdapterLLM,
    NotFoundError,
    PromptTemplate,
    ServerError,
    create,
)
from tests.conftest import FAST_RETRIES
from tests.servers import gradient as server_mod
from tests.servers.gradient import ADAPTER_ID, BASE_MODEL_ID, BASE_SLUG, TOKEN, WORKSPACE, Canned, GradientServer

# The JSON schemas of seeds 000 and 001 (shared/seeds/), copied so the suite runs from any checkout.
SEED_SCHEMAS = json.loads((Path(__file__).resolve().parents[1] / "data" / "gradient_seed_schemas.json").read_text())


@pytest.fixture
def server() -> Iterator[GradientServer]:
    srv = server_mod.start()
    yield srv
    srv.stop()


def base_llm(server: GradientServer, **kwargs: object) -> GradientBaseModelLLM:
    return GradientBaseModelLLM(
        base_model_slug=BASE_SLUG, access_token=TOKEN, workspace_id=WORKSPACE, host=server.url, **kwargs
    )


def completions(server: GradientServer) -> list[server_mod.Recorded]:
    return [r for r in server.requests if r.path.endswith("/complete")]


# -- configuration and schema -------------------------------------------------------------------------------------


def _flatten(prop: dict[str, object]) -> dict[str, object]:
    """A property's keywords with pydantic's ``anyOf: [X, null]`` for Optional folded into the property."""
    out = {k: v for k, v in prop.items() if k != "anyOf"}
    for branch in prop.get("anyOf", []):  # type: ignore[attr-defined]
        if branch.get("type") != "null":
            out.update(branch)
    return out


@pytest.mark.parametrize("cls", [GradientBaseModelLLM, GradientModelAdapterLLM])
def test_schema_carries_the_seed_fields(cls: type[BaseModel]) -> None:
    seed = SEED_SCHEMAS[cls.__name__]
    ours = cls.model_json_schema()
    assert ours["title"] == seed["title"]
    assert ours["required"] == seed["required"]
    for name, expected in seed["properties"].items():  # type: ignore[attr-defined]
        actual = _flatten(ours["properties"][name])
        for key, value in expected.items():
            assert actual.get(key) == value, (name, key)


def test_construction_does_no_io_and_reads_the_environment(
    server: GradientServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADIENT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("GRADIENT_WORKSPACE_ID", WORKSPACE)
    monkeypatch.setenv("GRADIENT_API_URL", server.url)
    llm = GradientBaseModelLLM(base_model_slug=BASE_SLUG)
    assert server.requests == []
    assert llm.complete("Hi there").text == "You said: Hi there"
    assert TOKEN not in repr(llm)
    monkeypatch.setenv("GRADIENT_API_URL", "")
    assert GradientModelAdapterLLM(model_adapter_id=ADAPTER_ID).host == "https://api.gradient.ai/api"


def test_missing_settings_are_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRADIENT_ACCESS_TOKEN", "GRADIENT_WORKSPACE_ID"):
        monkeypatch.setenv(name, "")  # empty counts as unset
    with pytest.raises(ConfigurationError) as info:
        GradientBaseModelLLM(base_model_slug=BASE_SLUG)
    assert "GRADIENT_ACCESS_TOKEN" in str(info.value)
    assert "GRADIENT_WORKSPACE_ID" in str(info.value)


@pytest.mark.parametrize("bad", [0, -1, 512])
def test_max_tokens_bounds(bad: int) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        GradientBaseModelLLM(base_model_slug="s", access_token="t", workspace_id="w", max_tokens=bad)
    ok = GradientBaseModelLLM(base_model_slug="s", access_token="t", workspace_id="w", max_tokens=511)
    assert ok.metadata.num_output == 511


def test_metadata_as_the_reference_integration() -> None:
    llm = GradientModelAdapterLLM(model_adapter_id=ADAPTER_ID, access_token="t", workspace_id="w")
    meta = llm.metadata
    assert (meta.context_window, meta.num_output, meta.is_chat_model, meta.is_function_calling_model) == (
        1024,
        20,
        False,
        False,
    )
    assert meta.model_name == ADAPTER_ID
    assert llm.class_name() == "custom_llm"


# -- the wire -----------------------------------------------------------------------------------------------------


def test_minimal_call_is_wire_identical_to_the_sdk(server: GradientServer) -> None:
    llm = base_llm(server)
    assert llm.complete("Hi there").text == "You said: Hi there"
    listing, completion = server.requests
    assert (listing.method, listing.path, listing.query) == (
        "GET",
        "/api/models",
        {"capability": ["any"], "onlyBase": ["True"]},
    )
    assert (completion.method, completion.path) == ("POST", f"/api/models/{BASE_MODEL_ID}/complete")
    assert completion.json() == {
        "query": "Hi there",
        "autoTemplate": None,
        "guidance": None,
        "maxGeneratedTokenCount": None,
        "rag": None,
        "temperature": None,
        "topK": None,
        "topP": None,
    }
    headers = completion.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-gradient-workspace-id"] == WORKSPACE
    assert headers["accept"] == "application/json"
    assert headers["content-type"] == "application/json"
    assert re.fullmatch(r"gradientai-python-sdk 1\.13\.1 \(\w+\)", headers["user-agent"])
    assert "content-type" not in listing.headers  # no body, no content type
    llm.complete("again")
    assert len(server.requests) == 3  # the model id is cached
    assert llm.metadata.model_name == BASE_MODEL_ID


def test_all_parameters_as_captured(server: GradientServer) -> None:
    llm = base_llm(server, max_tokens=10)
    response = llm.complete(
        "Hi",
        temperature=0.7,
        top_k=50,
        top_p=0.9,
        auto_template=True,
        guidance=["yes", "no"],
        rag={"collection_id": "col1"},
    )
    assert response.text == "yes"
    assert response.additional_kwargs["finish_reason"] == "stop"
    assert completions(server)[-1].json() == {
        "autoTemplate": True,
        "guidance": {"type": "choice", "value": ["yes", "no"]},
        "maxGeneratedTokenCount": 10,
        "query": "Hi",
        "rag": {"collectionId": "col1"},
        "temperature": 0.7,
        "topK": 50,
        "topP": 0.9,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_generated_token_count": 5},
        {"stop": ["\n"]},
        {"temperature": "0.5"},
        {"top_k": 1.5},
        {"auto_template": "yes"},
        {"guidance": ["x" * 33]},
        {"guidance": []},
        {"rag": ""},
        {"max_tokens": 512},
    ],
)
def test_bad_keywords_fail_before_anything_is_sent(server: GradientServer, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        base_llm(server).complete("Hi", **kwargs)
    assert server.requests == []


def test_chat_flattens_messages_like_the_reference(server: GradientServer) -> None:
    llm = base_llm(server)
    messages = [ChatMessage(role="system", content="Be nice"), ChatMessage(role="user", content="Hi")]
    response = llm.chat(messages)
    assert completions(server)[-1].json()["query"] == "system: Be nice\nuser: Hi\nassistant: "
    assert response.message.role == "assistant"
    assert response.content == "You said: system: Be nice\nuser: Hi\nassistant: "


def test_is_chat_model_only_changes_the_path_of_predict(server: GradientServer) -> None:
    template = PromptTemplate("Q: {q}")
    base_llm(server).predict(template, q="why")
    base_llm(server, is_chat_model=True).predict(template, q="why")
    queries = [r.json()["query"] for r in completions(server)]
    assert queries == ["Q: why", "user: Q: why\nassistant: "]
    assert all(r.json()["autoTemplate"] is None for r in completions(server))


def test_streaming_yields_the_whole_answer_once(server: GradientServer) -> None:
    llm = base_llm(server)
    chunks = list(llm.stream_complete("Hi"))
    assert [c.delta for c in chunks] == ["You said: Hi"]
    chat_chunks = list(llm.stream_chat([ChatMessage(role="user", content="Yo")]))
    assert [c.delta for c in chat_chunks] == ["You said: user: Yo\nassistant: "]

    async def collect() -> list[str]:
        return [c.delta or "" async for c in await llm.astream_complete("Hey")]

    assert asyncio.run(collect()) == ["You said: Hey"]


def test_async_is_real_async_io(server: GradientServer) -> None:
    llm = base_llm(server)

    async def run() -> list[str]:
        answers = await asyncio.gather(*(llm.acomplete(f"n{i}") for i in range(8)))
        chat = await llm.achat([ChatMessage(role="user", content="hello")])
        return [a.text for a in answers] + [chat.content or ""]

    texts = asyncio.run(run())
    assert texts[:8] == [f"You said: n{i}" for i in range(8)]
    assert texts[8] == "You said: user: hello\nassistant: "
    assert llm.transport._backend is None  # the async pool did the work, not the sync pool in a thread


def test_adapter_lookup_and_completion(server: GradientServer) -> None:
    llm = GradientModelAdapterLLM(
        model_adapter_id=ADAPTER_ID, access_token=TOKEN, workspace_id=WORKSPACE, host=server.url
    )
    assert llm.complete("Hi").text == "You said: Hi"
    lookup, completion = server.requests
    assert (lookup.method, lookup.path) == ("GET", f"/api/models/{ADAPTER_ID}")
    assert completion.path == f"/api/models/{ADAPTER_ID}/complete"


def test_unknown_slug_and_adapter_are_named(server: GradientServer) -> None:
    with pytest.raises(NotFoundError, match="no-such-model"):
        GradientBaseModelLLM(
            base_model_slug="no-such-model", access_token=TOKEN, workspace_id=WORKSPACE, host=server.url
        ).complete("x")
    missing = "0" * 50
    with pytest.raises(NotFoundError, match=missing):
        asyncio.run(
            GradientModelAdapterLLM(
                model_adapter_id=missing, access_token=TOKEN, workspace_id=WORKSPACE, host=server.url
            ).acomplete("x")
        )


# -- errors and retries -------------------------------------------------------------------------------------------


def test_error_bodies_become_typed_errors(server: GradientServer) -> None:
    llm = base_llm(server)
    with pytest.raises(ContentFilterError) as flagged:
        llm.complete("please FLAGME now")
    assert flagged.value.flagged == ["FLAGME"]
    assert flagged.value.status_code == 400
    with pytest.raises(NotFoundError, match="unknownRagCollection"):
        llm.complete("x", rag="nope")
    with pytest.raises(BadRequestError, match="ragRequiresAutoTemplating"):
        llm.complete("x", rag="col1", auto_template=False)
    server.script.append(
        Canned(
            400,
            {
                "type": "bodyParsingError",
                "message": "Invalid body",
                "payload": {"formattedValidationError": "query: required"},
            },
        )
    )
    with pytest.raises(BadRequestError, match="query: required"):
        llm.complete("x")
    wrong = GradientBaseModelLLM(base_model_slug=BASE_SLUG, access_token="bad", workspace_id=WORKSPACE, host=server.url)
    with pytest.raises(AuthenticationError) as auth:
        wrong.complete("x")
    assert "bad" not in str(auth.value)


def test_429_and_5xx_are_retried_a_bounded_number_of_times(server: GradientServer) -> None:
    llm = base_llm(server, max_retries=2, retry_policy=FAST_RETRIES)
    llm.complete("warm up")  # resolves the model
    before = len(server.requests)
    server.script.extend(
        [Canned(429, {"message": "slow down"}, {"Retry-After": "0.05"}), Canned(503, {"message": "busy"})]
    )
    assert llm.complete("Hi").text == "You said: Hi"
    assert len(server.requests) - before == 3
    server.script.extend([Canned(500, {"type": "failed", "message": "boom"})] * 3)
    with pytest.raises(ServerError, match="failed"):
        llm.complete("Hi")
    assert len(server.requests) - before == 6
    server.script.append(Canned(503, {"message": "busy"}))
    with pytest.raises(ServerError):
        llm.complete("Hi", max_retries=0)
    assert len(server.requests) - before == 7


def test_close_releases_the_connection(server: GradientServer) -> None:
    llm = base_llm(server)
    for _ in range(3):
        llm.complete("Hi")
    assert server.connections == 1  # one pooled keep-alive connection
    llm.close()
    llm.complete("Hi")
    assert server.connections == 2
    llm.close()


# -- through the core's prompt-based modes ------------------------------------------------------------------------


class Invoice(BaseModel):
    number: str
    total: float


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_structured_predict_and_predict_and_call(server: GradientServer) -> None:
    llm = base_llm(server)
    server.outputs.append('Here it is: {"number": "A-1", "total": 12.5}')
    invoice = llm.structured_predict(Invoice, PromptTemplate("Invoice from: {text}"), text="A-1, 12.50 EUR")
    assert invoice == Invoice(number="A-1", total=12.5)
    assert "Invoice from: A-1, 12.50 EUR" in completions(server)[-1].json()["query"]
    server.outputs.append('Action: add\nAction Input: {"a": 2, "b": 5}')
    result = llm.predict_and_call([FunctionTool.from_defaults(add)], "What is 2 + 5?")
    assert result.response == "7"


def test_create_specs() -> None:
    llm = create("gradient/" + BASE_SLUG, access_token="t", workspace_id="w")
    assert isinstance(llm, GradientBaseModelLLM)
    adapter = create("gradient-adapter/" + ADAPTER_ID, access_token="t", workspace_id="w")
    assert isinstance(adapter, GradientModelAdapterLLM)
    assert adapter.model_adapter_id == ADAPTER_ID


def test_concurrent_first_calls_share_one_model_lookup(server: GradientServer) -> None:
    llm = base_llm(server)

    async def burst() -> list[str]:
        return [r.text for r in await asyncio.gather(*(llm.acomplete(f"n{i}") for i in range(200)))]

    assert len(asyncio.run(burst())) == 200
    lookups = [r for r in server.requests if r.method == "GET"]
    assert len(lookups) == 1
