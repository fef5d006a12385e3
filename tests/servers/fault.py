"""A fault-injecting OpenAI-compatible server for the transport tests (real HTTP on 127.0.0.1).

The request body's ``model`` names the scenario; the ``x-test-id`` header keeps each test's attempt count apart.
``GET /_attempts/<id>`` returns the times (``time.monotonic()``) of every attempt the server saw for that id.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def chat_body(text: str = "ok") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def stream_chunk(text: str) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.attempts: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and delayed ACKs hold each answer 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), headers=headers)

    def do_GET(self) -> None:
        if self.path.startswith("/_attempts/"):
            with self.server.lock:
                self._json(200, self.server.attempts.get(self.path.rsplit("/", 1)[-1], []))
            return
        self._json(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        scenario = body.get("model", "ok")
        test_id = self.headers.get("x-test-id", "default")
        with self.server.lock:
            self.server.attempts[test_id].append(time.monotonic())
            attempt = len(self.server.attempts[test_id])
        getattr(self, "scenario_" + scenario.replace("-", "_"))(attempt, body)

    # -- scenarios (attempt counts from 1) ---------------------------------------------------------------------------

    def scenario_ok(self, attempt: int, body: dict[str, Any]) -> None:
        if body.get("stream"):
            self._stream([stream_chunk(w) for w in ("a", "b", "c")] + [b"data: [DONE]\n\n"])
        else:
            self._json(200, chat_body())

    def scenario_429_then_ok(self, attempt: int, body: dict[str, Any]) -> None:
        if attempt == 1:
            self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"})
        else:
            self.scenario_ok(attempt, body)

    def scenario_429_ms_then_ok(self, attempt: int, body: dict[str, Any]) -> None:
        if attempt == 1:
            self._json(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "200", "Retry-After": "30"})
        else:
            self.scenario_ok(attempt, body)

    def scenario_5xx_then_ok(self, attempt: int, body: dict[str, Any]) -> None:
        statuses = {1: 500, 2: 502, 3: 503}
        if attempt in statuses:
            self._json(statuses[attempt], {"error": {"message": f"boom {attempt}"}}, {"x-request-id": f"req-{attempt}"})
        else:
            self.scenario_ok(attempt, body)

    def scenario_always_503(self, attempt: int, body: dict[str, Any]) -> None:
        self._json(503, {"error": {"message": "unavailable"}}, {"x-request-id": "req-503"})

    def scenario_400(self, attempt: int, body: dict[str, Any]) -> None:
        self._json(400, {"error": {"message": "bad field 'x'", "type": "invalid_request_error"}})

    def scenario_401(self, attempt: int, body: dict[str, Any]) -> None:
        self._json(401, {"error": {"message": "invalid key"}})

    def scenario_validation_500(self, attempt: int, body: dict[str, Any]) -> None:
        self._json(
            500,
            {
                "error": {
                    "message": "1 validation error for Request: Input should be 'text' or 'json_object'",
                    "type": "internal_server_error",
                }
            },
        )

    def scenario_html_502(self, attempt: int, body: dict[str, Any]) -> None:
        self._send(502, b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>", "text/html")

    def scenario_reset(self, attempt: int, body: dict[str, Any]) -> None:
        # Promise a body, send half of it, then reset the connection.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b'{"choices": [')
        self.wfile.flush()
        self._reset()

    def scenario_slow_headers(self, attempt: int, body: dict[str, Any]) -> None:
        time.sleep(1.5)
        self.scenario_ok(attempt, body)

    def scenario_not_json(self, attempt: int, body: dict[str, Any]) -> None:
        self._send(200, b"this is not json", "text/plain")

    def scenario_big_body(self, attempt: int, body: dict[str, Any]) -> None:
        self._json(200, chat_body("x" * (50 * 1024 * 1024)))

    def scenario_stream_drop(self, attempt: int, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for word in ("Hel", "lo"):
            data = stream_chunk(word)
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
        self._reset()

    def scenario_stream_malformed(self, attempt: int, body: dict[str, Any]) -> None:
        self._stream([stream_chunk("Hi"), b"data: {not json\n\n", b"data: [DONE]\n\n"])

    def scenario_stream_crlf_split(self, attempt: int, body: dict[str, Any]) -> None:
        # CRLF line ends, a comment, a multi-line data field, and events split across network writes.
        event = b": keep-alive\r\n" + stream_chunk("x").replace(b"\n\n", b"\r\n\r\n")
        self._stream([event[:7], event[7:30], event[30:], b"data: [DONE]\r\n\r\n"])

    def scenario_stream_503_then_ok(self, attempt: int, body: dict[str, Any]) -> None:
        if attempt == 1:
            self._json(503, {"error": {"message": "warming up"}})
        else:
            self.scenario_ok(attempt, body)

    # -- batch jobs: answers that echo the request, with failures injected by attempt number -----------------------

    def scenario_echo(self, attempt: int, body: dict[str, Any]) -> None:
        messages = body.get("messages") or [{"content": body.get("prompt", "")}]
        self._json(200, chat_body(f"echo: {messages[-1].get('content')}"))

    def scenario_flaky(self, attempt: int, body: dict[str, Any]) -> None:
        """Every 7th attempt a 429 (retry after 5 ms), every 11th a 500; the others echo."""
        if attempt % 7 == 0:
            self._json(429, {"error": {"message": "slow down"}}, {"retry-after-ms": "5"})
        elif attempt % 11 == 0:
            self._json(500, {"error": {"message": "boom"}})
        else:
            self.scenario_echo(attempt, body)

    def scenario_slow_echo(self, attempt: int, body: dict[str, Any]) -> None:
        time.sleep(0.02)
        self.scenario_echo(attempt, body)

    def _reset(self) -> None:
        """Abort the connection (RST). shutdown() first: the handler's rfile/wfile keep the socket open otherwise."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()
        self.close_connection = True

    def _stream(self, pieces: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.flush()
            time.sleep(0.005)
        self.wfile.write(b"0\r\n\r\n")


def start() -> FaultServer:
    server = FaultServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
