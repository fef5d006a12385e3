"""The plug point: users' httpx clients and transports (here ``httpx.MockTransport``) carry every HTTP translator,
with the base URL, key and headers added per request; no model server needed. Also: one async pool per event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import httpx
import pytest

from llmkit import AiXplainLLM, ChatMessage, GradientBaseModelLLM, OpenAILike
from llmkit.errors import APIConnectionError, ServerError

HI = [ChatMessage(role="user", content="hi")]


class Recorder:
    """A MockTransport handler that records requests and answers from a table of (method, path) -> JSON."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"error": {"message": f"no route {request.url.path}"}})
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


def chat_answer(text: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}


def sse(*chunks: str) -> httpx.Response:
    events = [
        "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]})
        for c in chunks
    ]
    end = 'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}'
    body = "\n\n".join([*events, end, "data: [DONE]"])
    return httpx.Response(200, text=body + "\n\n", headers={"content-type": "text/event-stream"})


def test_openai_like_over_a_user_client_and_a_user_transport() -> None:
    handler = Recorder({("POST", "/v1/chat/completions"): chat_answer("hello"),
                        ("POST", "/v1/completions"): {"choices": [{"index": 0, "text": "done"}]}})  # fmt: skip
    llm = OpenAILike(
        model="m", api_base="https://api.example.test/v1", api_key="sk-test", default_headers={"x-team": "a"}
    )
    llm.with_http_clients(httpx.Client(transport=httpx.MockTransport(handler)))
    assert llm.chat(HI).message.content == "hello"
    sent = handler.requests[0]
    assert str(sent.url) == "https://api.example.test/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["x-team"] == "a"
    assert json.loads(sent.content)["messages"] == [{"role": "user", "content": "hi"}]
    completion = OpenAILike(model="m", api_base="https://api.example.test/v1", is_chat_model=False)
    completion.with_http_clients(transport=httpx.MockTransport(handler))
    assert completion.complete("x").text == "done"
    assert handler.requests[-1].url.path == "/v1/completions"

    async_handler = Recorder({("POST", "/v1/chat/completions"): chat_answer("async hello")})
    llm.with_http_clients(async_transport=httpx.MockTransport(async_handler))
    assert asyncio.run(llm.achat(HI)).message.content == "async hello"
    assert async_handler.requests[0].headers["authorization"] == "Bearer sk-test"


def test_openai_like_streams_over_a_mock_transport() -> None:
    handler = Recorder({("POST", "/v1/chat/completions"): sse("a", "b", "c")})
    llm = OpenAILike(model="m", api_base="http://127.0.0.1:1/v1").with_http_clients(
        transport=httpx.MockTransport(handler)
    )
    assert [c.delta for c in llm.stream_chat(HI)] == ["a", "b", "c", ""]
    assert json.loads(handler.requests[0].content)["stream"] is True


def test_errors_from_user_transports_are_typed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def tls_broken(request: httpx.Request) -> httpx.Response:
        raise OSError("certificate verify failed")

    for handler in (refuse, tls_broken):
        llm = OpenAILike(model="m", api_base="http://127.0.0.1:1/v1", max_retries=0)
        llm.with_http_clients(transport=httpx.MockTransport(handler))
        with pytest.raises(APIConnectionError, match=r"127\.0\.0\.1:1"):
            llm.chat(HI)
    failing = Recorder({("POST", "/v1/chat/completions"): httpx.Response(503, json={"error": {"message": "down"}})})
    llm = OpenAILike(model="m", api_base="http://127.0.0.1:1/v1", max_retries=1)
    llm.with_http_clients(transport=httpx.MockTransport(failing))
    with pytest.raises(ServerError, match="down"):
        llm.chat(HI)
    assert len(failing.requests) == 2  # retries run on user transports too


def test_gradient_translator_over_a_mock_transport() -> None:
    model = {"type": "baseModel", "id": "m-1", "name": "Llama", "slug": "llama2-7b-chat", "capabilities": ["complete"]}
    handler = Recorder({
        ("GET", "/api/models"): {"models": [model]},
        ("POST", "/api/models/m-1/complete"): {"generatedOutput": "fine", "finishReason": "stop"},
    })  # fmt: skip
    llm = GradientBaseModelLLM(
        base_model_slug="llama2-7b-chat", access_token="tok", workspace_id="ws", host="https://api.example.test/api"
    ).with_http_clients(transport=httpx.MockTransport(handler))
    assert llm.complete("Hey", max_tokens=5).text == "fine"
    lookup, completion = handler.requests
    assert lookup.url.params["onlyBase"] == "True"
    assert completion.headers["authorization"] == "Bearer tok"
    assert completion.headers["x-gradient-workspace-id"] == "ws"
    assert json.loads(completion.content)["query"] == "Hey"


def test_aixplain_translator_over_a_mock_transport() -> None:
    handler = Recorder({
        ("POST", "/api/v2/execute/m1"): {"status": "SUCCESS", "completed": True, "data": "answer", "usedCredits": 0.1},
    })  # fmt: skip
    llm = AiXplainLLM("m1", "Model", api_key="key-1", url="https://models.example.test/api/v2/execute")
    llm.with_http_clients(transport=httpx.MockTransport(handler))
    assert llm.complete("question").text == "answer"
    sent = handler.requests[0]
    assert sent.headers["x-api-key"] == "key-1"
    assert json.loads(sent.content)["data"] == "question"


def test_one_async_pool_per_event_loop_kept() -> None:
    """Threads each with their own event loop reuse their own pool instead of rebuilding one per call."""
    handler = Recorder({("POST", "/v1/chat/completions"): chat_answer("ok")})
    llm = OpenAILike(model="m", api_base="http://127.0.0.1:1/v1").with_http_clients(
        async_transport=httpx.MockTransport(handler)
    )
    transport = llm.transport
    pools: list[set[int]] = []

    def worker() -> None:
        async def calls() -> set[int]:
            seen = set()
            for _ in range(20):
                await llm.achat(HI)
                seen.add(id(transport.aclient))
            return seen

        loop = asyncio.new_event_loop()
        try:
            pools.append(loop.run_until_complete(calls()))
        finally:
            loop.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [len(seen) for seen in pools] == [1, 1, 1]  # one pool per loop, kept for all its calls
    assert len(handler.requests) == 60
