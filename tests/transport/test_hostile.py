"""Hostile servers end every call typed, bounded in time and memory: endless bodies, keep-alives forever, huge
error bodies, answers that are not streams, redirects, endless lines; and keys never travel in clear."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psutil
import pytest

from llmkit import ChatMessage, OpenAILike
from llmkit.errors import (
    APIStatusError,
    APITimeoutError,
    ConfigurationError,
    ResponseParseError,
    ServerError,
    StreamError,
)
from tests.servers.hostile import HostileServer

HI = [ChatMessage(role="user", content="hi")]

#: Each test runs on the default backends (urllib3, aiohttp) and on httpx.
pytestmark = pytest.mark.usefixtures("http_backend")


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.stop()


def llm(server: HostileServer, behaviour: str, **kwargs: object) -> OpenAILike:
    return OpenAILike(model="m", api_base=server.url(behaviour), max_retries=0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_endless_body_times_out_in_bounded_memory(hostile: HostileServer, mode: str) -> None:
    model = llm(hostile, "endless", timeout=2.0)
    rss_before = psutil.Process().memory_info().rss
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="did not arrive whole"):
        model.chat(HI) if mode == "sync" else asyncio.run(model.achat(HI))
    assert time.monotonic() - started < 5
    assert psutil.Process().memory_info().rss - rss_before < 100 * 2**20


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_keepalives_after_done_end_the_stream(hostile: HostileServer, mode: str) -> None:
    model = llm(hostile, "keepalive", timeout=1.0)

    async def collect() -> str:
        return "".join([c.delta or "" async for c in await model.astream_chat(HI)])

    started = time.monotonic()
    text = "".join(c.delta or "" for c in model.stream_chat(HI)) if mode == "sync" else asyncio.run(collect())
    assert text == "hi"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_body_that_stops_arriving_times_out(hostile: HostileServer, mode: str) -> None:
    model = llm(hostile, "stall", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(APITimeoutError):
        model.chat(HI) if mode == "sync" else asyncio.run(model.achat(HI))
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stream_that_stops_arriving_times_out_keeping_what_came(hostile: HostileServer, mode: str) -> None:
    model = llm(hostile, "stall", timeout=0.5)
    received: list[str] = []

    async def collect() -> None:
        async for chunk in await model.astream_chat(HI):
            received.append(chunk.delta or "")

    started = time.monotonic()
    with pytest.raises(StreamError, match="nothing arrived within the read timeout") as info:
        if mode == "sync":
            for chunk in model.stream_chat(HI):
                received.append(chunk.delta or "")
        else:
            asyncio.run(collect())
    assert received == ["hi"]
    assert info.value.received == "hi"
    assert time.monotonic() - started < 3


def test_only_keepalives_is_a_timeout(hostile: HostileServer) -> None:
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="no event"):
        list(llm(hostile, "comments", timeout=1.0).stream_chat(HI))
    assert time.monotonic() - started < 3


def test_a_huge_error_body_is_truncated_and_says_so(hostile: HostileServer) -> None:
    with pytest.raises(ServerError, match="truncated at 1048576 bytes") as info:
        llm(hostile, "huge-error", max_body_bytes=2**20).chat(HI)
    assert info.value.status_code == 500


@pytest.mark.parametrize(("behaviour", "text"), [("html", "502 Bad Gateway"), ("json-error", "model overloaded")])
def test_an_answer_that_is_not_a_stream_is_an_error_with_its_body(
    hostile: HostileServer, behaviour: str, text: str
) -> None:
    with pytest.raises(ResponseParseError, match="event stream") as info:
        list(llm(hostile, behaviour).stream_chat(HI))
    assert text in info.value.body


def test_a_redirect_is_an_error_naming_where(hostile: HostileServer) -> None:
    with pytest.raises(APIStatusError, match=r"redirect to https://elsewhere\.test/v1") as info:
        llm(hostile, "redirect").chat(HI)
    assert info.value.status_code == 302


def test_an_endless_line_is_refused(hostile: HostileServer) -> None:
    with pytest.raises(StreamError, match="longer than"):
        list(llm(hostile, "long-line").stream_chat(HI))


def test_keys_never_travel_in_clear_to_another_host() -> None:
    remote = OpenAILike(model="m", api_base="http://10.9.8.7:8000/v1", api_key="sk-secret", max_retries=0)
    with pytest.raises(ConfigurationError, match="allow_insecure_http") as info:
        remote.chat(HI)
    assert "sk-secret" not in str(info.value)
    keyless = OpenAILike(model="m", api_base="http://10.9.8.7:8000/v1")
    assert keyless.transport is not None  # no secret: plain http is the user's choice
    opted_in = OpenAILike(model="m", api_base="http://10.9.8.7:8000/v1", api_key="k", allow_insecure_http=True)
    assert opted_in.transport is not None


@pytest.mark.parametrize("url", ["localhost:8000/v1", "http://[::1", "ftp://example.test/v1"])
def test_bad_base_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError, match="URL"):
        OpenAILike(model="m", api_base=url).chat(HI)
