"""An OpenAI-compatible server that reports usage the way OpenAI does (real HTTP on 127.0.0.1, recording requests).

Each reply names the requested model and reports ``usage`` with ``prompt_tokens_details.cached_tokens`` and
``completion_tokens_details.reasoning_tokens``; LiteLLM's Anthropic fields (``cache_read_input_tokens``,
``cache_creation_input_tokens``) are added when ``usage[model]`` has them. Streams send the text in chunks, a
finish chunk, then — only when the request asks with ``stream_options.include_usage`` — a last chunk with empty
``choices`` and the usage, as OpenAI does. ``usage`` maps a model name to its counts (a default otherwise);
``requests`` keeps every request's headers, so tests read ``traceparent``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.servers.recording import Recorded, RecordingHandler, RecordingServer
from tests.servers.recording import start as start_server

DEFAULT_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "cached_tokens": 200, "reasoning_tokens": 0}


class UsageServer(RecordingServer):
    prefix = "/v1"

    def __init__(self) -> None:
        super().__init__(UsageHandler)
        self.usage: dict[str, dict[str, int]] = {}

    def usage_json(self, model: str) -> dict[str, Any]:
        counts = self.usage.get(model, DEFAULT_USAGE)
        body: dict[str, Any] = {
            "prompt_tokens": counts["prompt_tokens"],
            "completion_tokens": counts["completion_tokens"],
            "total_tokens": counts["prompt_tokens"] + counts["completion_tokens"],
            "prompt_tokens_details": {"cached_tokens": counts.get("cached_tokens", 0)},
            "completion_tokens_details": {"reasoning_tokens": counts.get("reasoning_tokens", 0)},
        }
        for key in ("cache_read_input_tokens", "cache_creation_input_tokens"):
            if key in counts:
                body[key] = counts[key]
        return body


class UsageHandler(RecordingHandler):
    server: UsageServer

    def route(self, request: Recorded) -> None:
        if not request.path.endswith("/chat/completions"):
            self.reply(404, {"error": {"message": f"no route {request.path}"}})
            return
        body = request.json()
        model = body.get("model", "m")
        text = self.server.next_output("Paris is the capital.")
        if not body.get("stream"):
            self.reply(
                200,
                {
                    "id": "chatcmpl-usage",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": self.server.usage_json(model),
                },
            )
            return
        self.start_chunked()
        base = {"id": "chatcmpl-usage", "object": "chat.completion.chunk", "model": model}
        for word in text.split(" "):
            delta = {"index": 0, "delta": {"content": word + " "}, "finish_reason": None}
            self._event({**base, "choices": [delta]})
        self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": self.server.usage_json(model)})
        self.write_chunk(b"data: [DONE]\n\n")
        self.end_chunked()

    def _event(self, chunk: dict[str, Any]) -> None:
        self.write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())


def start() -> UsageServer:
    return start_server(UsageServer())


__all__ = ["UsageServer", "start"]
