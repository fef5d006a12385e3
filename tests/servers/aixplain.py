"""A protocol-faithful aiXplain model-run service (real HTTP on 127.0.0.1), built from Part B of
``shared/protocols/gradient-and-aixplain.md``.

``POST /api/v2/execute/<model>`` answers directly or with a poll URL; ``POST /api/v1/execute/<model>`` always starts
a job; ``GET /api/v1/data/<request id>`` reports the job. ``x-api-key`` is checked everywhere. What a model does is
chosen by its id:

* ``direct``: answers at once; ``async``: a job that finishes after ``server.polls_needed`` polls;
* ``supplier-fails``: a job whose final poll carries ``error`` and ``supplierError`` (no status);
* ``poll-404`` / ``poll-500``: polls answer 404 / 500; ``never``: a job that never finishes;
* ``foreign``: a poll URL on another host; ``error-code``: a direct FAILED answer with an ``error_code``;
* streams (``options.stream``): ``stream`` (``data: {"data": ...}``), ``openai-stream`` (OpenAI chunks, ``data:``
  without the space), ``stream-fails`` (an error event midway), ``stream-drops`` (the connection is cut midway),
  ``stream-whole`` (the whole answer in one event);
* ``fail-<status>-<kind>``: the run POST answers that status with the body ``ERROR_BODIES[kind]``;
* ``odd-<kind>``: the run POST answers 200 with ``ODD_ANSWERS[kind]``; ``pollodd-<kind>``: a job whose every poll
  answers 200 with ``ODD_POLLS[kind]``; ``slow``: a direct answer after ``server.slow_seconds``;
* ``foreign-loopback``: a poll URL on 127.0.0.2 (another host, where nothing listens).

A model id may end in ``--<tag>`` (ignored), so that each scenario of a test has its own id.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from typing import Any

from tests.servers.recording import Canned, Recorded, RecordingHandler, RecordingServer
from tests.servers.recording import start as start_server

__all__ = ["KEY", "AiXplainServer", "Canned", "Recorded", "start"]

KEY = "teamkey123"
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
#: Error bodies by kind (``None``: ``{"error": "err<status>"}``).
ERROR_BODIES: dict[str, bytes | None] = {
    "error": None,
    "string": b'"oops"',
    "list": b'["a", 1]',
    "number": b"7",
    "zero": b"0",
    "object": b"{}",
    "emptyerror": b'{"error": ""}',
    "message": b'{"message": "m", "code": 3}',
    "html": b"<html>bad gateway</html>",
    "empty": b"",
}
ODD_ANSWERS: dict[str, bytes] = {
    "unknown-status": b'{"status": "COMPLETED", "completed": true, "data": "x", "requestId": "r9"}',
    "no-poll-url": b'{"status": "IN_PROGRESS", "requestId": "r9"}',
    "not-json": b"<html>ok</html>",
    "list": b"[1, 2]",
    "nulls": b'{"status": "SUCCESS", "completed": true, "data": null, "usedCredits": null, "error_message": null}',
    "error-only": b'{"status": "FAILED", "completed": true, "error": "bad", "supplierError": "sup"}',
}
ODD_POLLS: dict[str, bytes] = {
    "no-completed": b'{"status": "SUCCESS", "data": "x"}',
    "not-json": b"<html>busy</html>",
    "list": b"[1]",
    "null": b"null",
    "error-only": b'{"completed": true, "error": "generic error"}',
    "supplier-only": b'{"completed": true, "supplierError": "sup only"}',
    "unknown-status": b'{"completed": true, "status": "DONE", "data": "y"}',
    "data-object": b'{"completed": true, "status": "SUCCESS", "data": {"text": "t"}, "details": {"k": 1}}',
}


class AiXplainServer(RecordingServer):
    def __init__(self) -> None:
        super().__init__(AiXplainHandler)
        self.polls_needed = 2
        self.jobs: dict[str, dict[str, Any]] = {}  # request id -> {"model", "answer", "polls"}
        self.ids = itertools.count(1)
        self.slow_seconds = 1.5

    def reset(self) -> None:
        """Forget every request and job (a fresh start for the next client)."""
        with self.lock:
            self.requests.clear()
            self.jobs.clear()
            self.ids = itertools.count(1)

    @property
    def run_url(self) -> str:
        """What MODELS_RUN_URL would be."""
        return self.base + "/api/v1/execute"


def _answer(payload: dict[str, Any]) -> str:
    parts = [str(payload.get(k)) for k in ("context", "prompt") if payload.get(k)]
    return "Echo: " + " | ".join([*parts, str(payload.get("data"))])


class AiXplainHandler(RecordingHandler):
    server: AiXplainServer

    def route(self, request: Recorded) -> None:
        if request.headers.get("x-api-key") != KEY:
            self.reply(401, {"error": "err401"})
            return
        segments = [s for s in request.path.split("/") if s]
        if request.method == "POST" and segments[:2] == ["api", "v2"] and len(segments) == 4:
            self._run(segments[3], request, v2=True)
        elif request.method == "POST" and segments[:2] == ["api", "v1"] and len(segments) == 4:
            self._run(segments[3], request, v2=False)
        elif request.method == "GET" and segments[:3] == ["api", "v1", "data"] and len(segments) == 4:
            self._poll(segments[3])
        else:
            self.reply(404, {"error": "no such endpoint"})

    def _run(self, model_id: str, request: Recorded, v2: bool) -> None:
        model = model_id.split("--")[0]
        if model.startswith("fail-"):
            _, status, kind = model.split("-", 2)
            body = ERROR_BODIES[kind]
            self.reply(int(status), {"error": f"err{status}"} if body is None else body)
            return
        if model.startswith("odd-"):
            self.reply(200, ODD_ANSWERS[model[4:]])
            return
        try:
            payload = request.json()
        except ValueError:
            self.reply(400, {"error": "body is not JSON"})
            return
        if not isinstance(payload, dict) or "data" not in payload:
            self.reply(400, {"error": "data is required"})
            return
        answer = self.server.next_output(_answer(payload))
        if (payload.get("options") or {}).get("stream"):
            self._stream(model, answer)
            return
        if v2 and model == "slow":
            time.sleep(self.server.slow_seconds)
            model = "direct"
        if v2 and model == "direct":
            self.reply(200, {"status": "SUCCESS", "completed": True, "data": answer, "usedCredits": 0.002,
                             "runTime": 0.8, "usage": USAGE, "details": {}, "requestId": "r1"})  # fmt: skip
            return
        if v2 and model == "error-code":
            self.reply(200, {"status": "FAILED", "completed": True, "error_message": "The supplier is down",
                             "error_code": "AX-SUP-1000", "requestId": "r2"})  # fmt: skip
            return
        request_id = f"req-{next(self.server.ids)}"
        with self.server.lock:
            self.server.jobs[request_id] = {"model": model, "model_id": model_id, "answer": answer, "polls": 0}
        host = {
            "foreign": "http://evil.example.com",
            "foreign-loopback": f"http://127.0.0.2:{self.server.server_address[1]}",
        }.get(model, self.server.base)
        self.reply(200, {"status": "IN_PROGRESS", "data": f"{host}/api/v1/data/{request_id}", "requestId": request_id})

    def _poll(self, request_id: str) -> None:
        with self.server.lock:
            job = self.server.jobs.get(request_id)
            if job is not None:
                job["polls"] += 1
        if job is None:
            self.reply(404, {"error": f"unknown request {request_id}"})
            return
        model = job["model"]
        if model.startswith("pollodd-"):
            self.reply(200, ODD_POLLS[model[8:]])
        elif model == "poll-404":
            self.reply(404, {"error": "not found"})
        elif model == "poll-500":
            self.reply(500, {"error": "internal"})
        elif model == "never" or job["polls"] < self.server.polls_needed:
            self.reply(200, {"completed": False, "status": "IN_PROGRESS"})
        elif model == "supplier-fails":
            self.reply(
                200, {"completed": True, "error": "generic error", "supplierError": "sup", "requestId": request_id}
            )
        else:
            self.reply(200, {"completed": True, "status": "SUCCESS", "data": job["answer"], "details": [],
                             "usedCredits": 0.01, "runTime": 2.5, "usage": USAGE, "requestId": request_id})  # fmt: skip

    def _stream(self, model: str, answer: str) -> None:
        words = answer.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        self.start_chunked()
        if model == "openai-stream":
            for piece in pieces:
                chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.write_chunk(f"data:{json.dumps(chunk)}\n\n".encode())
            final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE}
            self.write_chunk(f"data:{json.dumps(final)}\n\ndata:[DONE]\n\n".encode())
        elif model == "stream-whole":
            self.write_chunk(f"data: {json.dumps({'data': answer})}\n\ndata: [DONE]\n\n".encode())
        else:
            half = len(pieces) // 2 if model in ("stream-fails", "stream-drops") else len(pieces)
            for piece in pieces[:half]:
                self.write_chunk(f"data: {json.dumps({'data': piece})}\n\n".encode())
                time.sleep(0.002)
            if model == "stream-drops":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if model == "stream-fails":
                self.write_chunk(b'data: {"status": "FAILED", "error": "the supplier stopped"}\n\n')
            else:
                self.write_chunk(b'data: {"status": "SUCCESS", "usedCredits": 0.003}\n\ndata: [DONE]\n\n')
        self.end_chunked()


def start() -> AiXplainServer:
    return start_server(AiXplainServer())
