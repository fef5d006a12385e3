"""A fast canned OpenAI-compatible server for benchmarks: asyncio, keep-alive HTTP/1.1, pre-built answers.

It parses just enough HTTP to answer ``POST /v1/chat/completions`` (a fixed completion, or a 16-chunk stream when the
body asks for ``"stream": true``) and ``GET /v1/models``, so the client side dominates what a benchmark measures.

Run: python -m bench.canned_server [--port 0]   (prints ``PORT <n>`` once listening)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

STREAM_CHUNKS = 16
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def _response(body: bytes, content_type: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\ncontent-length: %d\r\n\r\n" % len(body)
    return head + body


CHAT = _response(
    json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "The capital of France is Paris."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
        }
    ).encode()
)


def _stream_body() -> bytes:
    events = []
    for i in range(STREAM_CHUNKS):
        delta = {"role": "assistant", "content": f"tok{i} "} if i == 0 else {"content": f"tok{i} "}
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == STREAM_CHUNKS - 1 else None}],
        }
        events.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


STREAM = _response(_stream_body(), b"text/event-stream")
MODELS = _response(json.dumps({"object": "list", "data": [{"id": "bench", "object": "model"}]}).encode())


class CannedProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            match = _LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            if head.startswith(b"GET"):
                self.transport.write(MODELS)
            elif b'"stream": true' in body or b'"stream":true' in body:
                self.transport.write(STREAM)
            else:
                self.transport.write(CHAT)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CannedProtocol, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


@contextmanager
def running() -> Iterator[str]:
    """Start the server in its own process (so it does not share the client's GIL); yields the ``/v1`` base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.canned_server", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the canned server did not start: {line!r}")
        base = f"http://127.0.0.1:{int(line.split()[1])}/v1"
        time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
