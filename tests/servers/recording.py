"""The base of the protocol-faithful test servers: real HTTP on 127.0.0.1 that records every request (method,
path, query, lower-cased headers, raw body) and can be told to answer the next requests with canned faults."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_body: bytes

    def json(self) -> Any:
        return json.loads(self.raw_body)


@dataclass
class Canned:
    """An answer for the next request, whatever it is."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    prefix = ""

    def __init__(self, handler: type[RecordingHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.requests: list[Recorded] = []
        self.script: list[Canned] = []
        self.outputs: list[str] = []  # texts of the next answers
        self.lock = threading.Lock()
        self.connections = 0  # TCP connections accepted, to see pooling and close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return self.base + self.prefix

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def next_output(self, default: str) -> str:
        with self.lock:
            return self.outputs.pop(0) if self.outputs else default

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _record(self) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            raw_body=self.rfile.read(length) if length else b"",
        )
        with self.server.lock:
            self.server.requests.append(recorded)
        return recorded

    def _handle(self) -> None:
        request = self._record()
        with self.server.lock:
            canned = self.server.script.pop(0) if self.server.script else None
        if canned is not None:
            self.reply(canned.status, canned.body, canned.headers)
        else:
            self.route(request)

    do_GET = _handle
    do_POST = _handle

    def route(self, request: Recorded) -> None:
        raise NotImplementedError


S = TypeVar("S", bound=RecordingServer)


def start(server: S) -> S:
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
