"""llmkit's own CPU per call, with the network taken out: ``OpenAILike`` over backends that answer from memory
(the canned server's bytes), beside the JSON work any client does for the same call.

Over loopback the per-call time is mostly the HTTP library's and the kernel's, and on a shared machine it moves
by tens of percent between runs; this measures only what llmkit adds (request building, the transport's bookkeeping,
the retry driver, parsing into responses, stream assembly), as process time, best of interleaved rounds.

Run: .venv/bin/python -m bench.own_cost [--calls 5000] [--rounds 7]
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from bench._main import run

PROMPT = "What is the capital of France?"
CHAT = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
).encode()
_CHUNKS: list[dict[str, Any]] = [
    {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
    for i in range(16)
]
_CHUNKS[-1]["choices"][0]["finish_reason"] = "stop"
STREAM = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in _CHUNKS) + b"data: [DONE]\n\n"


def _llm() -> Any:
    """An ``OpenAILike`` whose sync and async backends answer from memory."""
    from llmkit import OpenAILike
    from llmkit.transport.backends.base import AsyncBackend, AsyncResponse, Outgoing, SyncBackend, SyncResponse

    def answer(request: Outgoing) -> tuple[bytes, dict[str, str]]:
        if request.body is not None and b'"stream":true' in request.body:
            return STREAM, {"content-type": "text/event-stream"}
        return CHAT, {"content-type": "application/json"}

    class Memory(SyncResponse):
        __slots__ = ("_body",)

        def __init__(self, request: Outgoing) -> None:
            self._body, headers = answer(request)
            super().__init__(200, headers, request.url, 60.0)

        def iter_bytes(self) -> Iterator[bytes]:
            yield self._body

        def close(self) -> None:
            pass

    class AsyncMemory(AsyncResponse):
        __slots__ = ("_body",)

        def __init__(self, request: Outgoing) -> None:
            self._body, headers = answer(request)
            super().__init__(200, headers, request.url, 60.0)

        def arrived(self) -> bytes:
            return self._body

        async def aiter_bytes(self) -> AsyncIterator[bytes]:
            yield self._body

        async def aclose(self) -> None:
            pass

    class Backend(SyncBackend):
        native = None

        def send(self, request: Outgoing) -> SyncResponse:
            return Memory(request)

        def close(self) -> None:
            pass

    class AsyncBackendInMemory(AsyncBackend):
        native = None

        async def send(self, request: Outgoing) -> AsyncResponse:
            return AsyncMemory(request)

        def _closer(self) -> Callable[[], Awaitable[object]]:
            async def close() -> None:
                pass

            return close

    llm = OpenAILike(model="bench", api_base="http://127.0.0.1:9/v1")
    llm.transport._backend = Backend()
    llm.transport._user_abackend = AsyncBackendInMemory()
    return llm


def _json_only() -> object:
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    return body, json.loads(CHAT)["choices"][0]["message"]["content"]


def _stream_json_only() -> object:
    text = [
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in STREAM.split(b"\n")
        if line.startswith(b"data: ") and line != b"data: [DONE]"
    ]
    return "".join(text)


def measure(calls: int = 5000, rounds: int = 7) -> dict[str, float]:
    """Best process-time µs per call of each case, over interleaved rounds."""
    from llmkit import ChatMessage

    llm = _llm()
    messages = [ChatMessage(role="user", content=PROMPT)]

    async def achat() -> object:
        return await llm.achat(messages)

    cases: dict[str, Callable[[], Any]] = {
        "JSON only (encode + decode)": _json_only,
        "llmkit chat": lambda: llm.chat(messages),
        "llmkit achat": achat,
        "JSON only, 16-chunk stream": _stream_json_only,
        "llmkit stream_chat, 16 chunks": lambda: list(llm.stream_chat(messages)),
    }
    best = dict.fromkeys(cases, float("inf"))
    loop = asyncio.new_event_loop()
    try:
        for _ in range(rounds):
            for name, call in cases.items():
                start = time.process_time()
                if asyncio.iscoroutinefunction(call):
                    loop.run_until_complete(_repeat(call, calls))
                else:
                    for _ in range(calls):
                        call()
                best[name] = min(best[name], (time.process_time() - start) / calls * 1e6)
    finally:
        loop.close()
    return best


async def _repeat(call: Callable[[], Awaitable[object]], times: int) -> None:
    for _ in range(times):
        await call()


def table(best: dict[str, float]) -> str:
    lines = ["| case | µs/call (process time, best round) |", "|---|---|"]
    lines += [f"| {name} | {us:.1f} |" for name, us in best.items()]
    chat, stream = best["JSON only (encode + decode)"], best["JSON only, 16-chunk stream"]
    lines += [
        "",
        f"llmkit's own work: chat {best['llmkit chat'] - chat:.1f} µs, achat {best['llmkit achat'] - chat:.1f} µs, "
        f"a 16-chunk stream {best['llmkit stream_chat, 16 chunks'] - stream:.1f} µs beyond the JSON every client does.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(run(__doc__, measure, table, calls=5000))
