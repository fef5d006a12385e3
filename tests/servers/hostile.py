"""A hostile OpenAI-compatible server: each path misbehaves in one way a real server or proxy can.

``/endless/v1/...``: headers, then a body that never ends; ``/keepalive/v1/...``: a complete stream, then keep-alive
comments forever; ``/comments/v1/...``: only keep-alive comments; ``/huge-error/v1/...``: a 500 with a 64 MB body;
``/html/v1/...`` and ``/json-error/v1/...``: a 200 that is not an event stream; ``/redirect/v1/...``: a 302 with a
JSON body; ``/long-line/v1/...``: one streamed line of 10 MB with no newline; ``/stall/v1/...``: the head and the
start of the answer (or of the stream, when asked for one), then silence with the connection open.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK = b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]}\n\n'


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stop_event = threading.Event()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{behaviour}/v1"

    def stop(self) -> None:
        self.stop_event.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _headers(
        self, status: int, content_type: str, length: int | None = None, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def _trickle(self, piece: bytes, pause: float) -> None:
        """Write ``piece`` again and again until the client goes away or the server stops."""
        try:
            while not self.server.stop_event.is_set():
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(pause)
        except OSError:
            return

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        behaviour = self.path.strip("/").split("/")[0]
        self.close_connection = True
        if behaviour == "stall":
            if json.loads(request).get("stream"):
                self._headers(200, "text/event-stream")
                self.wfile.write(CHUNK)
            else:
                self._headers(200, "application/json", length=1000)
                self.wfile.write(b'{"choices": [')
            self.wfile.flush()
            self.server.stop_event.wait(30)
        elif behaviour == "endless":
            self._headers(200, "application/json", length=10**12)
            self.wfile.write(b'{"choices": [{"message": {"content": "')
            self._trickle(b"x" * 1024, 0.01)
        elif behaviour == "keepalive":
            self._headers(200, "text/event-stream")
            self.wfile.write(CHUNK + b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
            self.wfile.write(b"data: [DONE]\n\n")
            self._trickle(b": keep-alive\n\n", 0.05)
        elif behaviour == "comments":
            self._headers(200, "text/event-stream")
            self._trickle(b": keep-alive\n\n", 0.05)
        elif behaviour == "huge-error":
            size = 64 * 2**20
            self._headers(500, "text/plain", length=size)
            try:
                for _ in range(size // 2**20):
                    self.wfile.write(b"e" * 2**20)
            except OSError:
                return
        elif behaviour == "html":
            body = b"<html><body>502 Bad Gateway</body></html>"
            self._headers(200, "text/html", length=len(body))
            self.wfile.write(body)
        elif behaviour == "json-error":
            body = json.dumps({"error": {"message": "model overloaded"}}).encode()
            self._headers(200, "application/json", length=len(body))
            self.wfile.write(body)
        elif behaviour == "redirect":
            body = json.dumps({"choices": [{"message": {"content": "from the redirect"}}]}).encode()
            self._headers(302, "application/json", length=len(body), extra={"Location": "https://elsewhere.test/v1"})
            self.wfile.write(body)
        elif behaviour == "long-line":
            self._headers(200, "text/event-stream")
            try:
                self.wfile.write(b"data: ")
                for _ in range(10):
                    self.wfile.write(b"y" * 2**20)
            except OSError:
                return
