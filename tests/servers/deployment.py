"""One OpenAI-compatible deployment with a fixed behaviour, for router tests: several run at once on 127.0.0.1.

Behaviours: ``healthy`` (answers its own name), ``slow`` (after ``delay`` seconds), ``rate-limited`` (429 with
Retry-After), ``failing`` (500), ``dying`` (a stream that sends two chunks and drops the connection), ``stalling``
(a stream that sends two chunks and then nothing for ``delay`` seconds). ``requests`` counts the calls it got.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class DeploymentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str, behaviour: str, delay: float = 0.0, retry_after: float = 1.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name, self.behaviour, self.delay, self.retry_after = name, behaviour, delay, retry_after
        self.requests = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def _chunk(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    return f"data: {json.dumps({'id': 'c', 'object': 'chat.completion.chunk', 'choices': [choice]})}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DeploymentServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        server = self.server
        with server.lock:
            server.requests += 1
        behaviour = server.behaviour
        if behaviour == "rate-limited":
            self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": str(server.retry_after)})
            return
        if behaviour == "failing":
            self._send(500, {"error": {"message": "internal error"}})
            return
        if behaviour == "slow":
            time.sleep(server.delay)
        if not body.get("stream"):
            message = {"role": "assistant", "content": server.name}
            usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self._send(200, {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for piece in (server.name, " says", " hello"):
            self.wfile.write(_chunk(piece))
            self.wfile.flush()
            if behaviour in ("dying", "stalling") and piece == " says":
                if behaviour == "stalling":
                    time.sleep(server.delay)
                self.close_connection = True
                return
        self.wfile.write(_chunk("", "stop") + b"data: [DONE]\n\n")
        self.close_connection = True
