"""Proxies from the environment, on every backend: ``HTTP_PROXY`` routes requests through a (loopback, recording)
proxy; ``NO_PROXY`` sends them direct."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from llmkit import ChatMessage, OpenAILike
from llmkit.errors import APIConnectionError
from llmkit.transport.proxies import ProxyRoutes

HI = [ChatMessage(role="user", content="hi")]
ANSWER = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "via proxy"}}]}).encode()


class ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself and records the absolute URL it was asked for."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProxyHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, proxy: str) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    ProxyHandler.seen.clear()
    return monkeypatch


def call(mode: str) -> str | None:
    llm = OpenAILike(model="m", api_base="http://127.0.0.1:1/v1", max_retries=0)  # nothing listens on port 1

    async def achat() -> str | None:
        try:
            return (await llm.achat(HI)).content
        finally:
            await llm.aclose()

    return llm.chat(HI).content if mode == "sync" else asyncio.run(achat())


@pytest.mark.usefixtures("http_backend")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_http_proxy_from_the_environment(environment: pytest.MonkeyPatch, mode: str) -> None:
    assert call(mode) == "via proxy"
    assert ProxyHandler.seen == ["http://127.0.0.1:1/v1/chat/completions"]


@pytest.mark.usefixtures("http_backend")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_no_proxy_goes_direct(environment: pytest.MonkeyPatch, mode: str) -> None:
    environment.setenv("NO_PROXY", "localhost,127.0.0.1")
    with pytest.raises(APIConnectionError):
        call(mode)
    assert ProxyHandler.seen == []


def test_routes() -> None:
    routes = ProxyRoutes({"https": "proxy:3128", "all": "socks5://other:1080", "no": ".internal,10.0.0.1"})
    assert routes.for_url("https://api.example.test/v1") == "http://proxy:3128"
    assert routes.for_url("http://api.example.test/v1") == "socks5://other:1080"
    assert routes.for_url("https://models.internal/v1") is None
    assert routes.for_url("http://10.0.0.1:8000/v1") is None
    assert not ProxyRoutes({})
    assert ProxyRoutes({}).for_url("https://x.test") is None
