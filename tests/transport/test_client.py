"""The transport against a real fault-injecting server: attempts, backoff bounds and error types."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from llmkit import ChatMessage
from llmkit.callbacks import CallbackHandler, CallbackManager
from llmkit.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    ResponseParseError,
    ServerError,
    StreamError,
)
from llmkit.providers.openai import OpenAILike
from llmkit.transport import HTTPTransport, Request
from tests.servers.fault import FaultServer

HI = [ChatMessage(role="user", content="hi")]

#: Each test runs on the default backends (urllib3, aiohttp) and on httpx.
pytestmark = pytest.mark.usefixtures("http_backend")


class Retries(CallbackHandler):
    def __init__(self) -> None:
        self.seen: list[tuple[int, float, str]] = []

    def on_retry(self, attempt: int, delay: float, error: BaseException) -> None:
        self.seen.append((attempt, delay, type(error).__name__))


def make(server: FaultServer, scenario: str, **kwargs: object) -> tuple[OpenAILike, str]:
    test_id = uuid.uuid4().hex
    llm = OpenAILike(model=scenario, api_base=server.url, default_headers={"x-test-id": test_id}, **kwargs)
    return llm, test_id


def attempts(server: FaultServer, test_id: str) -> list[float]:
    times: list[float] = httpx.get(server.url.replace("/v1", f"/_attempts/{test_id}")).json()
    return times


def test_429_honours_retry_after(fault_server: FaultServer) -> None:
    retries = Retries()
    llm, test_id = make(fault_server, "429-then-ok", callback_manager=CallbackManager([retries]))
    assert llm.chat(HI).content == "ok"
    times = attempts(fault_server, test_id)
    assert len(times) == 2
    assert 0.3 <= times[1] - times[0] < 1.0
    assert retries.seen == [(1, 0.3, "RateLimitError")]


def test_retry_after_ms_wins_over_seconds(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "429-ms-then-ok")
    assert llm.chat(HI).content == "ok"
    times = attempts(fault_server, test_id)
    assert 0.2 <= times[1] - times[0] < 1.0


def test_5xx_retried_with_backoff_until_success(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "5xx-then-ok", max_retries=3)
    assert llm.chat(HI).content == "ok"
    times = attempts(fault_server, test_id)
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # backoff: 0.5 * 2**(n-1), minus up to 25% jitter
    for n, gap in enumerate(gaps, start=1):
        assert 0.5 * 2 ** (n - 1) * 0.75 - 0.01 <= gap <= 0.5 * 2 ** (n - 1) + 0.3


def test_retries_exhausted_raise_server_error_with_request_id(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "always-503", max_retries=1)
    with pytest.raises(ServerError) as info:
        llm.chat(HI)
    assert info.value.status_code == 503
    assert info.value.request_id == "req-503"
    assert info.value.body == {"error": {"message": "unavailable"}}
    assert len(attempts(fault_server, test_id)) == 2


def test_per_call_max_retries_overrides(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "always-503", max_retries=5)
    with pytest.raises(ServerError):
        llm.chat(HI, max_retries=0)
    assert len(attempts(fault_server, test_id)) == 1


@pytest.mark.parametrize(("scenario", "error"), [("400", BadRequestError), ("401", AuthenticationError)])
def test_4xx_never_retried(fault_server: FaultServer, scenario: str, error: type[Exception]) -> None:
    llm, test_id = make(fault_server, scenario, max_retries=3)
    with pytest.raises(error):
        llm.chat(HI)
    assert len(attempts(fault_server, test_id)) == 1


def test_500_that_says_validation_error_is_a_bad_request(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "validation-500", max_retries=3)
    with pytest.raises(BadRequestError, match="validation error"):
        llm.chat(HI)
    assert len(attempts(fault_server, test_id)) == 1


def test_html_error_body_is_readable(fault_server: FaultServer) -> None:
    llm, _ = make(fault_server, "html-502", max_retries=0)
    with pytest.raises(ServerError, match="502 Bad Gateway") as info:
        llm.chat(HI)
    assert "<html>" not in str(info.value)


def test_connection_refused_is_retried_then_typed() -> None:
    from tests.conftest import free_port

    retries = Retries()
    llm = OpenAILike(
        model="m",
        api_base=f"http://127.0.0.1:{free_port()}/v1",
        max_retries=2,
        callback_manager=CallbackManager([retries]),
    )
    with pytest.raises(APIConnectionError):
        llm.chat(HI)
    assert [r[0] for r in retries.seen] == [1, 2]


def test_reset_mid_body_is_a_connection_error(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "reset", max_retries=1)
    with pytest.raises(APIConnectionError):
        llm.chat(HI)
    assert len(attempts(fault_server, test_id)) == 2


def test_slow_headers_time_out(fault_server: FaultServer) -> None:
    llm, _ = make(fault_server, "slow-headers", max_retries=0, timeout=0.3)
    with pytest.raises(APITimeoutError):
        llm.chat(HI)
    assert llm.chat(HI, timeout=5).content == "ok"


def test_non_json_success_body(fault_server: FaultServer) -> None:
    llm, _ = make(fault_server, "not-json")
    with pytest.raises(ResponseParseError, match="not JSON"):
        llm.chat(HI)


def test_50mb_body_is_capped_unless_allowed(fault_server: FaultServer) -> None:
    llm, _ = make(fault_server, "big-body", max_retries=0)
    with pytest.raises(ResponseParseError, match="max_body_bytes"):
        llm.chat(HI)  # the default cap is 32 MB
    llm, _ = make(fault_server, "big-body", max_body_bytes=64 * 2**20)
    assert len(llm.chat(HI).content or "") == 50 * 1024 * 1024


def test_stream_dropped_midway_keeps_what_arrived(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "stream-drop", max_retries=3)
    received = []
    with pytest.raises(StreamError) as info:
        for chunk in llm.stream_chat(HI):
            received.append(chunk.delta)
    assert received == ["Hel", "lo"]
    assert info.value.received == "Hello"
    assert len(attempts(fault_server, test_id)) == 1  # never retried after data was yielded


def test_stream_malformed_json(fault_server: FaultServer) -> None:
    llm, _ = make(fault_server, "stream-malformed")
    with pytest.raises(StreamError, match="not JSON") as info:
        list(llm.stream_chat(HI))
    assert info.value.received == "Hi"


def test_stream_crlf_comments_and_split_events(fault_server: FaultServer) -> None:
    llm, _ = make(fault_server, "stream-crlf-split")
    assert [c.delta for c in llm.stream_chat(HI)] == ["x"]


def test_stream_retried_before_first_byte(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "stream-503-then-ok")
    assert "".join(c.delta or "" for c in llm.stream_chat(HI)) == "abc"
    assert len(attempts(fault_server, test_id)) == 2


async def test_async_retry_and_stream(fault_server: FaultServer) -> None:
    llm, test_id = make(fault_server, "429-then-ok")
    assert (await llm.achat(HI)).content == "ok"
    assert len(attempts(fault_server, test_id)) == 2
    gen = await llm.astream_chat(HI)
    assert [c.delta async for c in gen][:3] == ["a", "b", "c"]
    with pytest.raises(RateLimitError):
        await make(fault_server, "429-then-ok")[0].achat(HI, max_retries=0)
    await llm.aclose()


async def test_async_timeout(fault_server: FaultServer) -> None:
    llm, _ = make(fault_server, "slow-headers", max_retries=0, timeout=0.3)
    with pytest.raises(APITimeoutError):
        await llm.achat(HI)


async def test_async_stream_drop(fault_server: FaultServer) -> None:
    llm, _ = make(fault_server, "stream-drop")
    with pytest.raises(StreamError):
        async for _ in await llm.astream_chat(HI):
            pass
    await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("replay_safe", "scenario", "expected"),
    [
        (False, "always-503", 1),  # ambiguous: the job may have started, so it is never sent twice
        (True, "always-503", 3),
        (False, "429-then-ok", 2),  # a 429 says the server did nothing: replayed
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_replay_safety(fault_server: FaultServer, replay_safe: bool, scenario: str, expected: int, mode: str) -> None:
    from llmkit.transport import HTTPTransport, Request
    from llmkit.transport.retry import RetryPolicy

    test_id = uuid.uuid4().hex
    transport = HTTPTransport(base_url=fault_server.url, max_retries=2, retry_policy=RetryPolicy(initial_delay=0.01))
    request = Request(
        "POST", "/chat/completions", json={"model": scenario}, headers={"x-test-id": test_id}, replay_safe=replay_safe
    )
    outcome = pytest.raises(ServerError) if scenario == "always-503" else contextlib.nullcontext()
    with outcome:
        if mode == "sync":
            transport.send(request).close()
        else:

            async def send_and_close() -> None:
                await (await transport.asend(request)).aclose()

            asyncio.run(send_and_close())
    assert len(attempts(fault_server, test_id)) == expected
    transport.close()


def test_unsent_requests_replay_even_when_unsafe() -> None:
    from llmkit.transport import HTTPTransport, Request
    from llmkit.transport.retry import RetryPolicy

    retries = Retries()
    transport = HTTPTransport(
        base_url="http://127.0.0.1:9", max_retries=2, retry_policy=RetryPolicy(initial_delay=0.01),
        callback_manager=CallbackManager([retries]),
    )
    with pytest.raises(APIConnectionError):
        transport.send(Request("POST", "/jobs", json={}, replay_safe=False))
    assert [seen[0] for seen in retries.seen] == [1, 2]


def test_the_backend_in_use(http_backend: str) -> None:
    """The parametrisation really switches libraries: urllib3 and aiohttp by default, httpx when asked."""
    llm = OpenAILike(model="m", api_base="http://127.0.0.1:1/v1")

    async def async_backend() -> str:
        name = type(llm.transport.abackend).__name__
        await llm.aclose()
        return name

    default = ("Urllib3Backend", "AiohttpBackend")
    expected = default if http_backend == "default" else ("HttpxBackend", "HttpxAsyncBackend")
    assert (type(llm.transport.backend).__name__, asyncio.run(async_backend())) == expected


class _HeaderEcho(BaseHTTPRequestHandler):
    """Answers every POST with the request's header lines, each as sent (a repeated header shows twice)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps([[name.lower(), value] for name, value in self.headers.items()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def test_a_request_sends_the_transports_headers_once_with_its_own_over_them() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeaderEcho)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    common = {"Accept": "application/json", "Authorization": "Bearer sk-test", "X-Common": "a"}
    transport = HTTPTransport(base_url=f"http://127.0.0.1:{server.server_address[1]}", headers=common)
    try:
        plain = Request("POST", "/", json={"q": 1})
        own = Request("POST", "/", json={"q": 2}, headers={"accept": "text/event-stream", "X-Own": "b"})
        for request in (plain, own, plain, own):  # the backend's remembered headers must follow each request
            lines: list[list[str]] = await transport.arequest_json(request)
            sent = [name for name, _ in lines]
            assert len(sent) == len(set(sent)), sent  # no header twice
            headers = dict(lines)
            assert headers["authorization"] == "Bearer sk-test"
            assert headers["x-common"] == "a"
            assert headers["content-type"] == "application/json"
            if request is own:
                assert (headers["accept"], headers["x-own"]) == ("text/event-stream", "b")
            else:
                assert headers["accept"] == "application/json"
                assert "x-own" not in headers
    finally:
        await transport.aclose()
        server.shutdown()
        server.server_close()
