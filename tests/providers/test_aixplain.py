"""AiXplainLLM against the protocol-faithful aiXplain server: the SDK's API byte for byte, its departures, and the
unified interface's typed errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from llmkit import (
    AiXplainLLM,
    APITimeoutError,
    AuthenticationError,
    ChatMessage,
    ConfigurationError,
    JobFailedError,
    NotFoundError,
    ResponseParseError,
    ServerError,
    StreamError,
    create,
)
from llmkit.providers.aixplain import Function, ModelResponse, ModelResponseStreamer, ResponseStatus, parse_line
from tests.servers import aixplain as server_mod
from tests.servers.aixplain import KEY, USAGE, AiXplainServer, Canned


@pytest.fixture
def server() -> Iterator[AiXplainServer]:
    srv = server_mod.start()
    yield srv
    srv.stop()


def make(server: AiXplainServer, model: str = "direct", **kwargs: object) -> AiXplainLLM:
    kwargs.setdefault("url", server.run_url)
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("supports_streaming", "stream" in model)
    return AiXplainLLM(model, model.title(), **kwargs)  # type: ignore[arg-type]


def finished(response: ModelResponse | ModelResponseStreamer) -> ModelResponse:
    assert isinstance(response, ModelResponse)
    return response


def polls(server: AiXplainServer) -> list[server_mod.Recorded]:
    return [r for r in server.requests if r.method == "GET"]


# -- construction ---------------------------------------------------------------------------------------------------


def test_constructor_follows_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL"):
        monkeypatch.delenv(name, raising=False)
    llm = AiXplainLLM("m1", "My LLM", "desc", "k", "OpenAI", "1.0", Function.TEXT_GENERATION, True, {"price": 1}, 0.5,
                      region="eu")  # fmt: skip
    assert (llm.id, llm.name, llm.description, llm.supplier, llm.version) == ("m1", "My LLM", "desc", "OpenAI", "1.0")
    assert (llm.is_subscribed, llm.cost, llm.temperature, llm.additional_info) == (
        True,
        {"price": 1},
        0.5,
        {"region": "eu"},
    )
    assert llm.url == "https://models.aixplain.com/api/v1/execute"
    assert llm.backend_url == "https://platform-api.aixplain.com"
    assert llm.run_url == "https://models.aixplain.com/api/v2/execute/m1"
    assert llm.run_async_url == "https://models.aixplain.com/api/v1/execute/m1"
    assert "k'" not in repr(llm)
    assert "SecretStr" in repr(llm)
    with pytest.raises(ValidationError, match="text-generation"):
        AiXplainLLM("m1", "x", api_key="k", function=Function.TRANSLATION)


def test_key_and_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEAM_API_KEY", raising=False)
    monkeypatch.setenv("AIXPLAIN_API_KEY", "alias-key")
    monkeypatch.setenv("MODELS_RUN_URL", "https://models.example.aixplain.com/api/v1/execute")
    llm = AiXplainLLM("m", "n")
    assert llm.api_key is not None
    assert llm.api_key.get_secret_value() == "alias-key"
    assert llm.run_url == "https://models.example.aixplain.com/api/v2/execute/m"
    monkeypatch.setenv("TEAM_API_KEY", "team-key")
    with pytest.raises(ConfigurationError, match="both set"):
        AiXplainLLM("m", "n")
    monkeypatch.delenv("TEAM_API_KEY")
    monkeypatch.delenv("AIXPLAIN_API_KEY")
    with pytest.raises(ConfigurationError, match="TEAM_API_KEY"):
        AiXplainLLM("m", "n")
    with pytest.raises(ConfigurationError, match="https"):
        AiXplainLLM("m", "n", api_key="k", url="http://models.example.com/api/v1/execute")
    monkeypatch.setenv("AIXPLAIN_ALLOW_INSECURE_URLS", "1")
    assert AiXplainLLM("m", "n", api_key="k", url="http://models.example.com/api/v1/execute").url.startswith("http:")


def test_create_spec(server: AiXplainServer) -> None:
    llm = create("aixplain/direct", api_key=KEY, url=server.run_url)
    assert isinstance(llm, AiXplainLLM)
    assert llm.name == "direct"
    assert llm.complete("hello").text == "Echo: hello"


# -- run: the SDK's API -----------------------------------------------------------------------------------------------


def test_run_direct_answer_byte_for_byte(server: AiXplainServer) -> None:
    llm = make(server, temperature=0.7)
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]
    response = finished(llm.run("Hello there", context="You are helpful", history=history, max_tokens=64, top_p=0.9))
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/api/v2/execute/direct")
    expected = {"data": "Hello there", "context": "You are helpful", "prompt": None, "history": history,
                "temperature": 0.7, "max_tokens": 64, "top_p": 0.9, "response_format": None}  # fmt: skip
    assert request.raw_body == json.dumps(expected).encode()  # the SDK's json.dumps defaults, key order included
    assert request.headers["x-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert response.status is ResponseStatus.SUCCESS
    assert str(response.status) == "SUCCESS"
    assert response["data"] == "Echo: You are helpful | Hello there"
    assert (response["usedCredits"], response.run_time, response.usage) == (0.002, 0.8, USAGE)
    assert response["requestId"] == "r1"
    assert "requestId" in response
    assert response.completed


def test_run_parameters_merge_as_the_sdk(server: AiXplainServer) -> None:
    make(server).run("Hi", temperature=0.1, parameters={"custom_param": 1, "max_tokens": 10})
    make(server, temperature=None).run('{"data": "inner", "temperature": 0.33}')
    make(server, temperature=None).run("42")
    first, second, third = (r.raw_body for r in server.requests)
    assert first == json.dumps({"data": "Hi", "custom_param": 1, "max_tokens": 10, "context": None, "prompt": None,
                                "history": None, "temperature": 0.1, "response_format": None}).encode()  # fmt: skip
    assert json.loads(second)["data"] == "inner"
    assert json.loads(second)["temperature"] == 0.33
    assert json.loads(third)["data"] == "42"


def test_run_polls_a_job_until_done(server: AiXplainServer) -> None:
    server.polls_needed = 3
    response = finished(make(server, "async").run("Hi", wait_time=0.2))
    assert response.status is ResponseStatus.SUCCESS
    assert response.data == "Echo: Hi"
    gets = polls(server)
    assert len(gets) == 3
    assert all(g.path == "/api/v1/data/req-1" and g.headers["x-api-key"] == KEY for g in gets)
    assert all(g.headers["content-type"] == "application/json" for g in gets)  # as the SDK, even on GET


def test_run_async_then_poll_and_sync_poll(server: AiXplainServer) -> None:
    llm = make(server, "async")
    started = llm.run_async("Hi")
    assert server.requests[0].path == "/api/v1/execute/async"
    assert started.to_dict() == {
        "status": "IN_PROGRESS", "data": "", "details": {}, "completed": False, "error_message": "",
        "used_credits": 0.0, "run_time": 0.0, "usage": None, "asset": None,
        "url": f"{server.base}/api/v1/data/req-1", "error_code": None,
    }  # fmt: skip
    assert started.url is not None
    assert llm.poll(started.url).status is ResponseStatus.IN_PROGRESS
    done = llm.sync_poll(started.url, wait_time=0.2, timeout=10)
    assert done.status is ResponseStatus.SUCCESS
    assert done.data == "Echo: Hi"


def test_failed_job_reports_supplier_error(server: AiXplainServer) -> None:
    server.polls_needed = 1
    response = finished(make(server, "supplier-fails").run("Hi", wait_time=0.2))
    assert response.status is ResponseStatus.FAILED
    assert response.error_message == "generic error - sup"
    with pytest.raises(JobFailedError, match="generic error - sup"):
        make(server, "supplier-fails").complete("Hi")


def test_error_code_is_reported_not_a_crash(server: AiXplainServer) -> None:
    response = finished(make(server, "error-code").run("Hi"))
    assert (response.status, response.error_code, response.error_message) == (
        ResponseStatus.FAILED,
        "AX-SUP-1000",
        "The supplier is down",
    )
    with pytest.raises(JobFailedError) as info:
        make(server, "error-code").chat([ChatMessage(role="user", content="Hi")])
    assert info.value.error_code == "AX-SUP-1000"


def test_a_4xx_poll_stops_polling(server: AiXplainServer) -> None:
    start = time.monotonic()
    response = finished(make(server, "poll-404").run("Hi", timeout=30, wait_time=0.2))
    assert time.monotonic() - start < 2  # the SDK would spin until the 30 s timeout
    assert len(polls(server)) == 1
    assert response.status is ResponseStatus.FAILED
    assert response.error_message.startswith("Resource not found")
    assert isinstance(response.exception, NotFoundError)
    with pytest.raises(NotFoundError):
        make(server, "poll-404").complete("Hi")


def test_a_5xx_poll_is_retried_then_fails(server: AiXplainServer) -> None:
    response = finished(make(server, "poll-500", max_retries=1).run("Hi"))
    assert len(polls(server)) == 2
    assert response.status is ResponseStatus.FAILED
    with pytest.raises(ServerError):
        make(server, "poll-500", max_retries=0).complete("Hi")


def test_a_job_that_outlives_the_timeout(server: AiXplainServer) -> None:
    start = time.monotonic()
    response = finished(make(server, "never").run("Hi", timeout=1, wait_time=0.2))
    assert 1 <= time.monotonic() - start < 2
    assert (response.status, response.completed, response.error_message) == (
        ResponseStatus.FAILED,
        False,
        "No response from the service.",
    )
    with pytest.raises(APITimeoutError, match="did not finish within 1 s"):
        make(server, "never", poll_timeout=1, wait_time=0.2).complete("Hi")


def test_the_key_never_goes_to_a_foreign_poll_url(server: AiXplainServer) -> None:
    response = finished(make(server, "foreign").run("Hi"))
    assert response.status is ResponseStatus.FAILED
    assert isinstance(response.exception, ResponseParseError)
    with pytest.raises(ResponseParseError, match=r"foreign host .*evil\.example\.com"):
        make(server, "foreign").complete("Hi")
    assert polls(server) == []  # nothing was sent there (nor anywhere else)


def test_http_errors_on_run_as_the_sdk_words_them(server: AiXplainServer) -> None:
    wrong = make(server, api_key="wrong")
    response = finished(wrong.run("Hi"))
    assert response.status is ResponseStatus.FAILED
    assert response.completed
    assert response.error_message == (
        "Unauthorized API key: Please verify the spelling of the API key and its current validity. Details: err401"
    )
    with pytest.raises(AuthenticationError):
        wrong.complete("Hi")
    server.script.append(Canned(402, {"error": "no credits"}))
    assert finished(make(server).run("Hi")).error_message.startswith("Payment required")
    server.script.append(Canned(502, b"<html>bad gateway</html>"))
    assert finished(make(server, max_retries=0).run("Hi")).error_message == (
        "Unspecified Server Error (Status 502) Details: unspecified error"
    )
    assert KEY not in response.error_message


# -- streams ----------------------------------------------------------------------------------------------------------


def test_run_stream_body_and_chunks(server: AiXplainServer) -> None:
    streamer = make(server, "stream", temperature=None).run("x", stream=True)
    assert isinstance(streamer, ModelResponseStreamer)
    with streamer:
        chunks = list(streamer)
    assert server.requests[0].raw_body == json.dumps({"data": "x", "context": None, "prompt": None, "history": None,
        "max_tokens": 128, "response_format": None, "options": {"stream": True}}).encode()  # fmt: skip
    assert "".join(c.data for c in chunks) == "Echo: x"
    assert streamer.status is ResponseStatus.SUCCESS
    assert all(c.data for c in chunks[:-1])  # no empty chunks for blank separator lines


def test_stream_formats_and_failures(server: AiXplainServer) -> None:
    server.outputs.append("the data: tricky")
    tricky = make(server, "stream").run("x", stream=True)
    assert "".join(c.data for c in tricky) == "the data: tricky"  # the SDK's v1 streamer gives "the tricky"
    openai = make(server, "openai-stream").run("y", stream=True)
    assert "".join(c.data for c in openai) == "Echo: y"
    failing = make(server, "stream-fails").run("one two three four", stream=True)
    chunks = list(failing)
    assert chunks[-1].status is ResponseStatus.FAILED
    assert chunks[-1].error_message == "the supplier stopped"
    refused = make(server, "stream", api_key="wrong").run("x", stream=True)
    (only,) = list(refused)
    assert only.status is ResponseStatus.FAILED
    assert only.error_message.startswith("Unauthorized API key")


def test_parse_line_reads_every_known_format() -> None:
    assert parse_line("") is None
    assert parse_line(": keep-alive") is None
    assert parse_line("event: token") is None
    assert parse_line('data:{"data": "a"}').text == "a"  # type: ignore[union-attr]
    assert parse_line('data: {"data": {"text": "b"}}').text == "b"  # type: ignore[union-attr]
    assert parse_line("plain words").text == "plain words"  # type: ignore[union-attr]
    assert parse_line("data: [DONE]").done  # type: ignore[union-attr]
    assert parse_line('{"status": "COMPLETED"}').done  # type: ignore[union-attr]
    assert parse_line('{"error": "bad"}').error == "bad"  # type: ignore[union-attr]


# -- the unified interface --------------------------------------------------------------------------------------------


def test_chat_maps_messages_to_context_history_and_data(server: AiXplainServer) -> None:
    llm = make(server, "async", temperature=None, wait_time=0.2)
    messages = [
        ChatMessage(role="system", content="Be brief"),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="hey"),
        ChatMessage(role="user", content='{"not": "parsed"}'),
    ]
    response = llm.chat(messages, max_tokens=32)
    body = server.requests[0].json()
    assert body["context"] == "Be brief"
    assert body["history"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]
    assert body["data"] == '{"not": "parsed"}'  # a prompt is sent as written, never parsed as JSON
    assert body["max_tokens"] == 32
    assert "temperature" not in body
    assert response.content == 'Echo: Be brief | {"not": "parsed"}'
    assert response.usage is not None
    assert response.usage.total_tokens == 7
    assert response.additional_kwargs["used_credits"] == 0.01
    assert response.additional_kwargs["request_id"] == "req-1"
    with pytest.raises(ConfigurationError, match="'stop'"):
        llm.complete("x", stop=["\n"])


def test_stream_chat_and_errors_midway(server: AiXplainServer) -> None:
    llm = make(server, "openai-stream")
    chunks = list(llm.stream_chat([ChatMessage(role="user", content="a b c")]))
    assert "".join(c.delta or "" for c in chunks) == "Echo: a b c"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 7
    with pytest.raises(StreamError) as failed:
        list(make(server, "stream-fails").stream_complete("one two three four"))
    assert failed.value.received == "Echo: one"
    with pytest.raises(StreamError) as dropped:
        list(make(server, "stream-drops").stream_complete("one two three four"))
    assert dropped.value.received == "Echo: one"


def test_async_interface_polls_without_blocking_the_loop(server: AiXplainServer) -> None:
    llm = make(server, "async", wait_time=0.2)

    async def run() -> tuple[list[str], int, str]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        answers = await asyncio.gather(*(llm.acomplete(f"q{i}") for i in range(5)))
        streamed = "".join([c.delta or "" async for c in await make(server, "stream").astream_complete("s t")])
        task.cancel()
        return [a.text for a in answers], ticks, streamed

    texts, ticks, streamed = asyncio.run(run())
    assert texts == [f"Echo: q{i}" for i in range(5)]
    assert ticks >= 10  # the loop kept running while the jobs were polled
    assert streamed == "Echo: s t"
    with pytest.raises(APITimeoutError):
        asyncio.run(make(server, "never", poll_timeout=0.5, wait_time=0.2).acomplete("x"))
