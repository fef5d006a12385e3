"""The gateway with real clients: the OpenAI SDK (sync, async, streaming, tools, structured output) and litellm,
errors in OpenAI's shape, virtual keys, limits, budgets that hold under concurrent streams, the usage log."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import MASTER, admin, serving
from tests.servers.deployment import DeploymentServer

openai = pytest.importorskip("openai", reason="the OpenAI SDK is the client under test (pip install openai)")

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, DeploymentServer]]:
    started = {
        "limited": DeploymentServer("limited", "rate-limited", retry_after=7.0),
        "failing": DeploymentServer("failing", "failing"),
        "slow": DeploymentServer("slow", "slow", delay=3.0),
    }
    yield started
    for server in started.values():
        server.stop()


def models(upstreams: dict[str, DeploymentServer]) -> dict[str, Any]:
    remote = {name: {"model": "openai-like/m", "api_base": s.url, "max_retries": 0} for name, s in upstreams.items()}
    return {"echo": {"model": "mock"}, **remote}


@pytest.fixture(scope="module")
def open_gateway(upstreams: dict[str, DeploymentServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = f"sqlite:///{tmp_path_factory.mktemp('gw')}/open.sqlite"
    with serving({"models": models(upstreams), "database_url": database}) as base:
        yield base


def client(base: str, key: str = "anything", **kwargs: Any) -> Any:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, **kwargs)


def test_openai_sdk_chat_and_stream(open_gateway: str) -> None:
    sdk = client(open_gateway)
    answer = sdk.chat.completions.create(model="echo", messages=HI)
    assert answer.choices[0].message.content == "hi"
    assert answer.model == "echo"
    assert answer.choices[0].finish_reason == "stop"
    chunks = list(
        sdk.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "one two three"}], stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_openai_sdk_async(open_gateway: str) -> None:
    sdk = openai.AsyncOpenAI(base_url=open_gateway + "/v1", api_key="x", max_retries=0)
    answers = await asyncio.gather(
        *(sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": f"n{i}"}]) for i in range(20))
    )
    assert [a.choices[0].message.content for a in answers] == [f"n{i}" for i in range(20)]
    stream = await sdk.chat.completions.create(model="echo", messages=HI, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "hi"
    await sdk.close()


def test_openai_sdk_tools_and_structured_output(open_gateway: str) -> None:
    sdk = client(open_gateway)
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    answer = sdk.chat.completions.create(model="echo", messages=HI, tools=[tool], tool_choice="required")
    calls = answer.choices[0].message.tool_calls
    assert calls
    assert calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    assert answer.choices[0].finish_reason == "tool_calls"

    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    parsed = sdk.chat.completions.parse(model="echo", messages=HI, response_format=City)
    assert isinstance(parsed.choices[0].message.parsed, City)


def test_legacy_completions(open_gateway: str) -> None:
    sdk = client(open_gateway)
    assert sdk.completions.create(model="echo", prompt="hello world").choices[0].text == "hello world"
    streamed = sdk.completions.create(model="echo", prompt="a b c", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "a b c"


def test_models_health_metrics(open_gateway: str) -> None:
    assert {m.id for m in client(open_gateway).models.list()} == {"echo", "limited", "failing", "slow"}
    assert httpx.get(open_gateway + "/health").json()["status"] == "ok"
    client(open_gateway).chat.completions.create(model="echo", messages=HI)
    metrics = httpx.get(open_gateway + "/metrics").text
    assert 'llmkit_gateway_requests_total{model="echo",status="200"}' in metrics


def test_errors_in_openai_shape(open_gateway: str) -> None:
    sdk = client(open_gateway)
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="nope", messages=HI)
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="limited", messages=HI)
    assert limited.value.response.headers["retry-after"] == "7"  # the upstream's Retry-After, passed on
    with pytest.raises(openai.InternalServerError) as failing:
        sdk.chat.completions.create(model="failing", messages=HI)
    assert failing.value.status_code == 502
    with pytest.raises(openai.InternalServerError):  # a stream that fails before its first chunk: a real status
        sdk.chat.completions.create(model="failing", messages=HI, stream=True)
    bad = httpx.post(open_gateway + "/v1/chat/completions", content=b"{not json")
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    empty = httpx.post(open_gateway + "/v1/chat/completions", json={"model": "echo", "messages": []})
    assert empty.status_code == 400
    assert "messages" in empty.json()["error"]["message"]
    oversized = {"model": "echo", "messages": HI, "x": "y" * 9_000_000}
    huge = httpx.post(open_gateway + "/v1/chat/completions", json=oversized)
    assert huge.status_code == 413


def test_a_client_that_goes_away_cancels_the_upstream_call(open_gateway: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(open_gateway + "/v1/chat/completions", json={"model": "slow", "messages": HI}, timeout=0.5)
    with pytest.raises(httpx.ReadTimeout):  # a stream, before its first chunk
        body = {"model": "slow", "messages": HI, "stream": True}
        httpx.post(open_gateway + "/v1/chat/completions", json=body, timeout=0.5)
    assert time.monotonic() - started < 3
    time.sleep(0.5)
    metrics = httpx.get(open_gateway + "/metrics").text
    assert 'llmkit_gateway_requests_total{model="slow",status="499"} 2.0' in metrics
    # The same connection still serves: a cancelled call leaves no state behind.
    assert client(open_gateway).chat.completions.create(model="echo", messages=HI).choices[0].message.content == "hi"


def test_the_completion_endpoints_outside_the_fast_path(open_gateway: str) -> None:
    assert httpx.get(open_gateway + "/v1/chat/completions").status_code == 405  # Starlette's router answers

    def pieces() -> Iterator[bytes]:  # a body in several ASGI messages (chunked upload)
        yield b'{"model": "echo", '
        yield b'"messages": [{"role": "user", "content": "in pieces"}]}'

    reply = httpx.post(open_gateway + "/v1/chat/completions", content=pieces())
    assert reply.json()["choices"][0]["message"]["content"] == "in pieces"
    assert reply.headers["x-request-id"].startswith("req_")
    assert reply.headers["content-type"] == "application/json"


def test_litellm_as_a_client(open_gateway: str) -> None:
    litellm = pytest.importorskip("litellm", reason="the 'litellm' extra is not installed")
    answer = litellm.completion(
        model="openai/echo", api_base=open_gateway + "/v1", api_key="x", messages=HI, num_retries=0
    )
    assert answer.choices[0].message.content == "hi"
    chunks = litellm.completion(
        model="openai/echo", api_base=open_gateway + "/v1", api_key="x", messages=HI, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hi"


@pytest.fixture
def keyed(upstreams: dict[str, DeploymentServer], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    path = tmp_path / "keys.sqlite"
    config = {"models": models(upstreams), "master_key": MASTER, "database_url": f"sqlite:///{path}"}
    with serving(config) as base:
        yield base, path


def test_virtual_keys(keyed: tuple[str, Path]) -> None:
    base, path = keyed
    with pytest.raises(openai.AuthenticationError):
        client(base, key="sk-wrong").chat.completions.create(model="echo", messages=HI)
    assert httpx.post(base + "/v1/chat/completions", json={"model": "echo", "messages": HI}).status_code == 401
    created = admin(base, "POST", "/admin/keys", json={"name": "ci", "models": ["echo"], "rpm": 2})
    assert created.status_code == 201
    secret, key_id = created.json()["key"], created.json()["id"]
    sdk = client(base, key=secret)
    assert sdk.chat.completions.create(model="echo", messages=HI).choices[0].message.content == "hi"
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="failing", messages=HI)
    sdk.chat.completions.create(model="echo", messages=HI)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="echo", messages=HI)
    assert int(limited.value.response.headers["retry-after"]) >= 1
    listing = admin(base, "GET", "/admin/keys")
    assert secret not in listing.text
    assert listing.json()["data"][0]["hint"].endswith(secret[-4:])
    assert httpx.get(base + "/admin/keys", headers={"Authorization": f"Bearer {secret}"}).status_code == 403
    assert admin(base, "DELETE", f"/admin/keys/{key_id}").json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="echo", messages=HI)
    assert secret.encode() not in path.read_bytes()  # stored hashed
    expected = {(key_id, "echo", 200), (key_id, "failing", 403), (key_id, "echo", 429)}
    deadline = time.monotonic() + 5
    while True:  # the usage log is written by a background thread
        with sqlite3.connect(path) as conn:
            rows = set(conn.execute("SELECT key_id, model, status FROM gateway_usage").fetchall())
        if expected <= rows or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert expected <= rows
