"""AiXplainLLM against the protocol-faithful aiXplain server: the SDK's API byte for byte, its departures, and the
unified interface's typed errors."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Iterator
from unittest import mock

import pytest

from llmkit import (
    AiXplainLLM,
    APITimeoutError,
    AuthenticationError,
    ChatMessage,
    ConfigurationError,
    JobFailedError,
    LLMError,
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
    with pytest.raises(ConfigurationError, match="text-generation"):
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


# -- issue #15: the SDK's behaviour where the seed is silent (see also test_aixplain_differential.py) -----------------


def posts(server: AiXplainServer) -> list[server_mod.Recorded]:
    return [r for r in server.requests if r.method == "POST"]


@pytest.mark.parametrize(
    ("status", "sent"),
    [(500, 1), (502, 1), (503, 1), (504, 1), (408, 1), (409, 1), (429, 3)],
)
def test_a_job_start_is_never_replayed_after_an_ambiguous_failure(
    server: AiXplainServer, status: int, sent: int
) -> None:
    """A 5xx/408/409 may come after the job started (and billed): one POST, for run, run_async and chat alike.
    A 429 means the service refused it: the transport's retries apply (max_retries=2: three POSTs)."""
    llm = make(server, f"fail-{status}-error", max_retries=2)
    response = finished(llm.run("Hi"))
    assert response.status is ResponseStatus.FAILED
    assert len(posts(server)) == sent
    server.requests.clear()
    assert llm.run_async("Hi").status is ResponseStatus.FAILED
    assert len(posts(server)) == sent
    server.requests.clear()
    with pytest.raises(LLMError):
        llm.complete("Hi")
    assert len(posts(server)) == sent


def test_polls_are_replayed_a_job_start_is_not(server: AiXplainServer) -> None:
    response = finished(make(server, "poll-500", max_retries=2).run("Hi"))
    assert (len(posts(server)), len(polls(server))) == (1, 3)  # a GET is safe to repeat
    assert response.error_message == "Internal server error: Please try again later. Details: internal"


def test_top_p_is_sent_when_given_even_at_one(server: AiXplainServer) -> None:
    llm = make(server)
    llm.run("Hi")
    llm.run("Hi", top_p=1.0)
    llm.run_async("Hi", top_p=1.0)
    unset, explicit, explicit_async = (r.json() for r in server.requests[:3])
    assert "top_p" not in unset
    assert explicit["top_p"] == explicit_async["top_p"] == 1.0
    assert inspect.signature(AiXplainLLM.run).parameters["top_p"].default == 1.0  # seed 003's signature


def test_response_format_goes_into_the_body(server: AiXplainServer) -> None:
    make(server).run("Hi", response_format="json_object")
    make(server, "async").run_async("Hi", response_format={"type": "json_object"})
    assert server.requests[0].json()["response_format"] == "json_object"
    assert server.requests[1].json()["response_format"] == {"type": "json_object"}


def test_a_model_that_does_not_stream_is_refused_before_sending(server: AiXplainServer) -> None:
    llm = make(server, "stream", supports_streaming=False)
    with pytest.raises(ConfigurationError, match=r"'Stream \(stream\)' does not support streaming.*supports_streaming"):
        llm.run("Hi", stream=True)
    assert server.requests == []
    assert not llm.capabilities.streaming
    (chunk,) = list(llm.stream_complete("a b"))  # the unified interface: the whole answer as one chunk
    assert chunk.text == chunk.delta == "Echo: a b"
    assert "options" not in server.requests[0].json()


def test_model_response_item_assignment_as_the_sdk() -> None:
    response = ModelResponse(status=ResponseStatus.SUCCESS, data="a", requestId="r1")
    response["data"] = "b"
    response["requestId"] = "r2"
    response["usedCredits"] = 0.5
    response["runTime"] = 1.5
    assert (response.data, response.additional_fields, response.used_credits, response.run_time) == (
        "b",
        {"requestId": "r2"},
        0.5,
        1.5,
    )
    with pytest.raises(KeyError, match=r"Key 'nope' not found in ModelResponse\."):
        response["nope"] = 1
    assert ModelResponse(status="FAILED", error="e", supplierError="s").error_message == "e - s"


def test_run_and_sync_poll_go_through_the_public_poll(server: AiXplainServer) -> None:
    answer = ModelResponse(status=ResponseStatus.SUCCESS, data="patched", completed=True)
    llm = make(server, "async")
    with mock.patch.object(llm, "poll", return_value=answer) as patched:
        assert llm.run("Hi") is answer
        assert llm.sync_poll("http://x/never/sent") is answer
    assert patched.call_count == 2
    assert polls(server) == []
    assert "poll" not in llm.model_dump()
    assert finished(llm.run("Hi", wait_time=0.2)).data == "Echo: Hi"  # the patch is gone

    class Counting(AiXplainLLM):
        def poll(self, poll_url: str, name: str = "model_process") -> ModelResponse:
            self.additional_info["polls"] = self.additional_info.get("polls", 0) + 1
            return super().poll(poll_url, name)

    counting = Counting("async", "Async", api_key=KEY, url=server.run_url)
    assert finished(counting.run("Hi", wait_time=0.2)).data == "Echo: Hi"
    assert counting.additional_info["polls"] == server.polls_needed


def test_odd_poll_answers_read_as_the_sdk(server: AiXplainServer) -> None:
    no_completed = make(server, "pollodd-no-completed")
    started = no_completed.run_async("Hi")
    assert started.url is not None
    response = no_completed.poll(started.url)
    assert (response.status, response.completed) == (ResponseStatus.FAILED, False)
    assert response.error_message == "'completed'"
    not_json = make(server, "pollodd-not-json")
    started = not_json.run_async("Hi")
    assert started.url is not None
    assert not_json.poll(started.url).error_message == "Expecting value: line 1 column 1 (char 0)"
