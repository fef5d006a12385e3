"""The OpenAI wire format both ways: round trips (hypothesis), hostile replies as typed errors, stream endings."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmkit import ChatMessage, OpenAILike
from llmkit.errors import ResponseParseError, StreamError
from llmkit.transport import ServerSentEvent
from llmkit.types import ChatResponse, Usage, text_message
from llmkit.wire.openai import (
    MAX_TOOL_CALLS,
    ChatRequest,
    ChatStreamParser,
    ChunkEncoder,
    chat_completion_json,
    chat_request_body,
    from_openai_message,
    parse_chat,
    parse_chat_request,
    parse_usage,
    sse,
    to_openai_message,
)

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
arguments = st.dictionaries(names, st.integers() | text, max_size=3).map(json.dumps)
tool_call = st.builds(
    lambda i, name, args: {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}},
    st.integers(0, 99),
    names,
    arguments,
)
message = st.one_of(
    st.builds(lambda role, content: {"role": role, "content": content}, st.sampled_from(["system", "user"]), text),
    st.builds(lambda content: {"role": "assistant", "content": content}, text),
    st.builds(
        lambda calls: {"role": "assistant", "content": None, "tool_calls": calls},
        st.lists(tool_call, min_size=1, max_size=3),
    ),
    st.builds(
        lambda content, i: {"role": "tool", "content": content, "tool_call_id": f"call_{i}"}, text, st.integers(0, 9)
    ),
)
params = st.fixed_dictionaries(
    {}, optional={"temperature": st.floats(0, 2), "max_tokens": st.integers(1, 4096), "seed": st.integers(0, 99)}
)


@settings(max_examples=200, deadline=None)
@given(st.lists(message, min_size=1, max_size=5), params, st.booleans(), names)
def test_request_round_trip(messages: list[dict[str, Any]], extra: dict[str, Any], stream: bool, model: str) -> None:
    body: dict[str, Any] = {"model": model, "messages": messages, **extra}
    if stream:
        body["stream"] = True
    assert chat_request_body(parse_chat_request(body)) == body


def test_request_with_tools_and_schema_round_trips() -> None:
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]
    schema = {"name": "Person", "schema": {"type": "object"}, "strict": True}
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": tools,
        "tool_choice": "required",
        "response_format": {"type": "json_schema", "json_schema": schema},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    request = parse_chat_request(body)
    assert request.params == {"tools": tools, "tool_choice": "required", "json_schema": schema}
    assert request.include_usage
    assert chat_request_body(request) == body


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user", "content": 3}]},
    ],
)
def test_malformed_requests_name_the_problem(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"message|role|content"):
        parse_chat_request(body)


def test_image_parts_are_read() -> None:
    msg = from_openai_message(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        }
    )
    assert to_openai_message(msg)["content"][1] == {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}


@settings(max_examples=100, deadline=None)
@given(text, st.lists(tool_call, max_size=2), st.integers(0, 999), st.integers(0, 999))
def test_reply_round_trip(content: str, calls: list[dict[str, Any]], prompt: int, completion: int) -> None:
    extra = {"tool_calls": calls} if calls else {}
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    response = ChatResponse(message=text_message(content, extra), usage=usage)
    back = parse_chat(chat_completion_json(response, "m"), "test")
    assert back.message.content == content
    assert back.message.additional_kwargs.get("tool_calls") == (calls or None)
    assert back.usage == usage.model_copy(update={"model": "m"})  # the reply names its model


def _stream_through_parser(chunks: list[dict[str, Any]]) -> list[ChatResponse]:
    parser = ChatStreamParser("test")
    out = []
    for chunk in chunks:
        for line in sse(chunk).decode().splitlines():
            if line.startswith("data: "):
                response = parser.feed(ServerSentEvent(data=line[6:]))
                if response is not None:
                    out.append(response)
    parser.ensure_complete()
    return out


@settings(max_examples=100, deadline=None)
@given(st.lists(text, min_size=1, max_size=6), st.lists(tool_call, max_size=2))
def test_stream_encoding_round_trips(pieces: list[str], calls: list[dict[str, Any]]) -> None:
    """A stream encoded by ChunkEncoder (what a gateway sends) parses back to the same text and tool calls."""
    encoder = ChunkEncoder("m")
    encoded, so_far = [], ""
    for index, piece in enumerate(pieces):
        so_far += piece
        partial = [dict(c, function={**c["function"]}) for c in calls] if index == len(pieces) - 1 else []
        chunk = encoder.encode(
            ChatResponse(message=text_message(so_far, {"tool_calls": partial} if partial else {}), delta=piece)
        )
        if chunk is not None:
            encoded.append(chunk)
    last = ChatResponse(message=text_message(so_far, {"tool_calls": calls} if calls else {}))
    encoded += encoder.final(last, include_usage=False)
    responses = _stream_through_parser(encoded)
    assert responses[-1].message.content == so_far
    assert responses[-1].message.additional_kwargs.get("tool_calls", []) == calls


HOSTILE_REPLIES = [
    ({"choices": ["x"]}, "choices"),
    ({"choices": []}, "no choices"),
    ({"choices": [{"message": {"content": 42}}]}, "message.content"),
    ({"choices": [{"message": {"content": "a"}}], "usage": "many"}, "usage"),
    ({"choices": [{"message": {"content": "a"}}], "usage": {"prompt_tokens": "3"}}, "prompt_tokens"),
    ({"choices": [{"message": {"content": "a"}, "logprobs": {"content": [{"logprob": -1.0}]}}]}, "token"),
    ({"choices": [{"message": {"content": None, "tool_calls": ["call it"]}}]}, "tool call"),
    ({"choices": [{"message": {"content": None, "tool_calls": [{"function": {"arguments": "{}"}}]}}]}, "name"),
    ("not an object", "choices"),
]


@pytest.mark.parametrize(("body", "field"), HOSTILE_REPLIES)
def test_hostile_replies_are_typed_and_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(ResponseParseError, match=field):
        parse_chat(body, "test")


def test_a_huge_tool_call_index_allocates_nothing() -> None:
    parser = ChatStreamParser("test")
    event = ServerSentEvent(data=json.dumps({"choices": [{"delta": {"tool_calls": [{"index": 1_000_000}]}}]}))
    with pytest.raises(ResponseParseError, match="index"):
        parser.feed(event)
    assert parser.tool_calls == []
    many = [{"index": i, "function": {"name": "f", "arguments": ""}} for i in range(MAX_TOOL_CALLS + 1)]
    with pytest.raises(ResponseParseError, match="index"):
        parser.feed(ServerSentEvent(data=json.dumps({"choices": [{"delta": {"tool_calls": many}}]})))


def _llm_over(body: bytes) -> OpenAILike:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    return OpenAILike(model="m", api_base="http://127.0.0.1:1/v1").with_http_clients(  # type: ignore[return-value]
        transport=httpx.MockTransport(handler)
    )


def test_a_stream_cut_before_its_end_is_an_error() -> None:
    cut = sse({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}) + sse(
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]}
    )
    with pytest.raises(StreamError) as info:
        list(_llm_over(cut).stream_chat([ChatMessage(role="user", content="hi")]))
    assert info.value.received == "Hello"
    finished = cut + sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})  # no [DONE]: still complete
    assert (
        "".join(c.delta or "" for c in _llm_over(finished).stream_chat([ChatMessage(role="user", content="x")]))
        == "Hello"
    )


def test_usage_only_chunk_and_final_usage() -> None:
    encoder = ChunkEncoder("m")
    usage = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    first = encoder.encode(ChatResponse(message=text_message("hi"), delta="hi"))
    assert first is not None
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "hi"}
    stop, usage_chunk = encoder.final(ChatResponse(message=text_message("hi"), usage=usage), include_usage=True)
    assert stop["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert isinstance(ChatRequest(model="m", messages=[]).call_kwargs(), dict)


def test_usage_details_from_every_openai_shaped_reply() -> None:
    openai_body = {
        "model": "gpt-4o-2024-08-06",
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 200, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 64},
        },
    }
    usage = parse_usage(openai_body)
    assert usage is not None
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (200, None, 64)
    assert usage.model == "gpt-4o-2024-08-06"
    # LiteLLM's normalised Anthropic usage: cache reads and writes, already inside prompt_tokens.
    litellm_body = {
        "model": "claude-3-5-sonnet-20241022",
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 100,
            "total_tokens": 1100,
            "cache_read_input_tokens": 400,
            "cache_creation_input_tokens": 100,
        },
    }
    usage = parse_usage(litellm_body)
    assert usage is not None
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (400, 100)
    # llama.cpp's server: the prompt tokens it reused from its cache.
    llama_body = {"usage": {"prompt_tokens": 50, "completion_tokens": 5}, "timings": {"cache_n": 42}}
    usage = parse_usage(llama_body)
    assert usage is not None
    assert usage.cache_read_tokens == 42
    assert usage.total_tokens == 55
    with pytest.raises(ResponseParseError):
        parse_usage({"usage": {"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": -1}}})


def test_stream_chunks_keep_their_finish_reason() -> None:
    parser = ChatStreamParser()
    chunk = parser.feed_chunk({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "length"}]})
    assert chunk is not None
    assert chunk.additional_kwargs == {"finish_reason": "length"}
