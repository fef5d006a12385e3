"""Media a message refers to by URL is fetched through the transport: redirects followed, size capped, typed errors,
and on the async path fetched before the request is built, without blocking the event loop."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from llmkit import ChatMessage, OpenAILike
from llmkit.errors import NotFoundError, ResponseParseError
from llmkit.transport.media import afetch, fetch
from llmkit.types import AudioBlock, TextBlock

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 28


class MediaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/clip.wav")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow.wav":
            time.sleep(0.5)
        body = WAV if self.path in ("/clip.wav", "/slow.wav") else b"x" * (2 * 2**20) if self.path == "/big" else b""
        status = 200 if body else 404
        self.send_response(status)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def media() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MediaHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_follows_redirects_caps_size_and_types_errors(media: str) -> None:
    assert fetch(f"{media}/redirect") == WAV
    assert asyncio.run(afetch(f"{media}/clip.wav")) == WAV
    with pytest.raises(ResponseParseError, match="larger than"):
        fetch(f"{media}/big", max_bytes=2**20)
    with pytest.raises(NotFoundError):
        fetch(f"{media}/missing")


def test_async_chat_fetches_audio_without_blocking_the_loop(media: str) -> None:
    bodies: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(await request.aread()))
        return httpx.Response(200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]})

    llm = OpenAILike(model="m", api_base="http://127.0.0.1:1/v1").with_http_clients(
        async_transport=httpx.MockTransport(handler)
    )
    message = ChatMessage(role="user", blocks=[TextBlock(text="transcribe"), AudioBlock(url=f"{media}/slow.wav")])

    async def run() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.create_task(ticker())
        await llm.achat([message])
        task.cancel()
        return ticks

    assert asyncio.run(run()) >= 5  # the loop kept running during the 0.5 s fetch
    part = bodies[0]["messages"][0]["content"][1]
    assert part["type"] == "input_audio"
    assert base64.b64decode(part["input_audio"]["data"]) == WAV
