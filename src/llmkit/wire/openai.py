"""OpenAI's chat and completion format, both ways.

Client side (what providers use):

* llmkit -> request: :func:`to_openai_message`, :func:`content_part`, :func:`tools_body`, :func:`response_format`;
* reply -> llmkit: :func:`parse_chat`, :func:`parse_completion`, :func:`parse_usage`, :func:`parse_logprobs`, and
  the stream parsers :class:`ChatStreamParser` / :class:`CompletionStreamParser`.

Server side (what a gateway uses):

* request -> llmkit: :func:`from_openai_message`, :func:`parse_chat_request` (:func:`parse_chat_call`);
* llmkit -> reply: :func:`chat_completion_json`, :class:`ChunkEncoder` (stream chunks, tool-call deltas included)
  and :func:`sse` (one server-sent event).

Replies are validated where they are read, cheaply and once: a reply of the wrong shape (``choices: ["x"]``, usage
as a string, ``content: 42``, a nameless tool call, a tool-call index of a million) is a
:class:`~llmkit.errors.ResponseParseError` naming the field, never a ``KeyError`` or a million-entry list.

Example:
    >>> from llmkit.types import ChatMessage
    >>> body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2}
    >>> request = parse_chat_request(body)
    >>> request.messages[0].content, request.params
    ('Hi', {'temperature': 0.2})
    >>> to_openai_message(request.messages[0])
    {'role': 'user', 'content': 'Hi'}
"""

from __future__ import annotations

import json
import numbers
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmkit.errors import ResponseParseError, StreamError
from llmkit.transport import ServerSentEvent
from llmkit.transport.codec import decode_json
from llmkit.types import (
    AudioBlock,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    DocumentBlock,
    ImageBlock,
    LogProb,
    MessageRole,
    TextBlock,
    Usage,
    chat_chunk,
    completion_chunk,
    text_message,
    trusted,
)
from llmkit.wire.stream import StreamParser

#: The most tool calls one answer may carry: a stream's ``index`` beyond it is refused, not allocated.
MAX_TOOL_CALLS = 128

#: Each role's name on OpenAI's wire (Cohere's and Gemini's names for the assistant are the assistant).
_ROLE_NAME = {role: role.value for role in MessageRole} | {
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
}

# ---------------------------------------------------------------------------------------------------------------------
# llmkit -> request


def _audio_format(block: AudioBlock) -> str:
    subtype = block.mimetype.split("/")[-1]
    return {"mpeg": "mp3", "x-wav": "wav", "wave": "wav"}.get(subtype, subtype)


def content_part(block: Any) -> dict[str, Any] | None:
    """One content block as an OpenAI content part (None for blocks the API has no part for)."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        url = str(block.url) if block.url and block.image is None and block.path is None else block.data_url()
        image: dict[str, Any] = {"url": url}
        if block.detail:
            image["detail"] = block.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(block, AudioBlock):
        data = block.resolve(as_base64=True).decode()
        return {"type": "input_audio", "input_audio": {"data": data, "format": _audio_format(block)}}
    if isinstance(block, DocumentBlock):
        return {"type": "file", "file": {"filename": block.title or "document", "file_data": block.data_url()}}
    return None


def to_openai_message(message: ChatMessage) -> dict[str, Any]:
    """One message in OpenAI's chat format."""
    role = _ROLE_NAME.get(message.role) or message.role.value
    blocks = message.blocks
    if len(blocks) == 1 and type(blocks[0]) is TextBlock:  # the usual message: one text
        content: Any = blocks[0].text
    elif all(type(b) is TextBlock for b in blocks):
        content = "\n".join(b.text for b in blocks)  # type: ignore[union-attr]
    else:
        content = [part for part in map(content_part, blocks) if part is not None]
    out: dict[str, Any] = {"role": role, "content": content}
    extra = message.additional_kwargs
    if extra:
        if "tool_calls" in extra:
            out["tool_calls"] = extra["tool_calls"]
            if not content:
                out["content"] = None
        for key in ("tool_call_id", "name"):
            if key in extra:
                out[key] = extra[key]
    return out


def _tool_spec(tool: Any) -> dict[str, Any]:
    if isinstance(tool, dict) and "function" in tool:
        return tool  # already OpenAI's shape
    from llmkit.tools import as_tool_metadata

    return as_tool_metadata(tool).to_openai_tool(skip_length_check=True)


def tools_body(tools: Sequence[Any] | None, tool_choice: Any = None) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` in OpenAI's format (a tool name forces that tool)."""
    if not tools:
        return {}
    body: dict[str, Any] = {"tools": [_tool_spec(t) for t in tools]}
    if tool_choice is not None:
        body["tool_choice"] = (
            tool_choice
            if tool_choice in ("auto", "none", "required") or isinstance(tool_choice, dict)
            else {"type": "function", "function": {"name": tool_choice}}
        )
    return body


def response_format(spec: dict[str, Any], style: str = "openai") -> dict[str, Any]:
    """llmkit's ``json_schema`` request (``{"name", "schema", "strict"}``) as a ``response_format``: OpenAI's
    ``json_schema`` type, or (``style="json_object"``) llama.cpp's ``{"type": "json_object", "schema": ...}``.

    A strict request is sent with a schema that follows OpenAI's strict rules (see :func:`strict_schema`), or with
    ``strict: false`` when the schema cannot follow them (a ``dict[str, int]`` field, a tuple)."""
    if style == "json_object":
        return {"type": "json_object", "schema": spec["schema"]}
    spec = dict(spec)
    if spec.get("strict"):
        strict = strict_schema(spec["schema"])
        if strict is None:
            spec["strict"] = False
        else:
            spec["schema"] = strict
    return {"type": "json_schema", "json_schema": spec}


#: The keywords OpenAI's strict mode accepts (structured outputs guide, "Supported schemas").
STRICT_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "const", "$ref", "$defs",
    "title", "description", "pattern", "format", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "minItems", "maxItems",
})  # fmt: skip
#: Keywords that only annotate or narrow what pydantic validates anyway: dropped (llmkit validates every answer).
_DROPPED_KEYWORDS = frozenset({
    "default", "examples", "deprecated", "readOnly", "writeOnly", "minLength", "maxLength", "uniqueItems",
    "minProperties", "maxProperties", "discriminator", "contentMediaType", "contentEncoding", "$comment",
})  # fmt: skip


class _NotStrict(Exception):
    """The schema uses something OpenAI's strict mode cannot express."""


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return schema
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        if any(b.get("type") == "null" for b in branches):
            return schema
        return {**schema, "anyOf": [*branches, {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}


def _strict_node(node: Any) -> Any:
    if not isinstance(node, dict):
        raise _NotStrict(f"a schema node that is not an object: {node!r}")
    if "$ref" in node:  # siblings of $ref are not allowed: keep the reference only
        return {"$ref": node["$ref"]}
    if "oneOf" in node:  # pydantic's discriminated unions; anyOf is what strict mode has (llmkit validates anyway)
        node = {**{k: v for k, v in node.items() if k != "oneOf"}, "anyOf": node["oneOf"]}
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**{k: v for k, v in node.items() if k != "allOf"}, **node["allOf"][0]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key not in STRICT_KEYWORDS:
            raise _NotStrict(f"the keyword {key!r}")
        out[key] = value
    if "properties" in out or out.get("type") == "object":
        if "properties" not in out and out.get("additionalProperties", True) is not False:
            raise _NotStrict("an object with free-form keys (a dict field)")
        properties = out.get("properties", {})
        required = set(out.get("required", []))
        out["properties"] = {
            name: _strict_node(prop) if name in required else _nullable(_strict_node(prop))
            for name, prop in properties.items()
        }
        out["required"] = list(properties)
        out["additionalProperties"] = False
    if "items" in out:
        out["items"] = _strict_node(out["items"])
    if "anyOf" in out:
        out["anyOf"] = [_strict_node(branch) for branch in out["anyOf"]]
    if "$defs" in out:
        out["$defs"] = {name: _strict_node(d) for name, d in out["$defs"].items()}
    return out


def strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """``schema`` rewritten to OpenAI's strict rules, or ``None`` when it cannot be.

    Every object gets ``additionalProperties: false`` and lists all its properties in ``required``; a property that
    was optional becomes required and nullable (``anyOf [..., {"type": "null"}]``, a ``null`` answer is dropped
    again before validation so the field's default applies); keywords strict mode rejects that only narrow what
    pydantic validates anyway (``default``, ``minLength``...) are dropped; ``$defs``/``$ref`` are kept. The root must
    be an object; dict fields, tuples, ``not``/``if`` and similar cannot be expressed.

    Example:
        >>> strict = strict_schema({"type": "object", "properties": {"a": {"type": "integer", "default": 1}}})
        >>> strict["properties"], strict["required"], strict["additionalProperties"]
        ({'a': {'anyOf': [{'type': 'integer'}, {'type': 'null'}]}}, ['a'], False)
        >>> strict_schema({"type": "object", "additionalProperties": {"type": "integer"}}) is None
        True
    """
    if schema.get("type") != "object" or "anyOf" in schema:
        return None
    try:
        result: dict[str, Any] = _strict_node(schema)
    except _NotStrict:
        return None
    return result


# ---------------------------------------------------------------------------------------------------------------------
# reply -> llmkit


def _malformed(provider: str, what: str, body: Any) -> ResponseParseError:
    return ResponseParseError(
        f"{provider}: malformed reply: {what} (got {str(body)[:200]})", body=body, provider=provider
    )


_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _count(usage: dict[str, Any], key: str, provider: str) -> int | None:
    value = usage.get(key)
    if value is None or (type(value) is int and value >= 0):
        return value
    raise _malformed(provider, f"usage.{key} must be a non-negative integer", usage)


def _detail(usage: dict[str, Any], details: str, key: str, provider: str) -> int | None:
    section = usage.get(details)
    return _count(section, key, provider) if isinstance(section, dict) else None


def parse_usage(body: dict[str, Any], provider: str = "openai") -> Usage | None:
    """The ``usage`` of a reply or chunk (None when absent), with the model the reply names.

    Cached input comes from OpenAI's ``prompt_tokens_details.cached_tokens`` or, through LiteLLM, Anthropic's
    ``cache_read_input_tokens``/``cache_creation_input_tokens`` (which LiteLLM already counts in ``prompt_tokens``);
    reasoning from ``completion_tokens_details.reasoning_tokens``; llama.cpp's server reports the prompt tokens it
    reused from its cache as ``timings.cache_n``."""
    usage = body.get("usage")
    if not usage:
        return None
    if not isinstance(usage, dict):
        raise _malformed(provider, "usage must be an object", usage)
    get = usage.get
    prompt, completion, total = get("prompt_tokens"), get("completion_tokens"), get("total_tokens")
    usual = (
        type(prompt) is int and type(completion) is int and type(total) is int and min(prompt, completion, total) >= 0
    )
    if not usual:  # each count checked (None is allowed), the first bad one named
        for key in _COUNTS:
            _count(usage, key, provider)
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    cache_read = cache_write = reasoning = None
    if not usual or len(usage) > 3:  # beside the three counts: the cache and reasoning counts may be there
        cache_read = _detail(usage, "prompt_tokens_details", "cached_tokens", provider)
        if cache_read is None:
            cache_read = _count(usage, "cache_read_input_tokens", provider)
        cache_write = _count(usage, "cache_creation_input_tokens", provider)
        reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens", provider)
    if cache_read is None:
        timings = body.get("timings")
        if isinstance(timings, dict) and type(timings.get("cache_n")) is int:
            cache_read = timings["cache_n"]
    model = body.get("model")
    return trusted(  # every count checked above: no second validation on the hot path
        Usage,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        credits=None,
        provider=None,
        model=model if isinstance(model, str) and model else None,
    )


def _logprob(entry: Any, provider: str) -> LogProb:
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        raise _malformed(provider, "each logprob needs a string 'token'", entry)
    value = entry.get("logprob")
    if not isinstance(value, numbers.Real) or isinstance(value, bool):  # Real: numpy's floats too (llama.cpp)
        raise _malformed(provider, "each logprob needs a numeric 'logprob'", entry)
    return LogProb(token=entry["token"], logprob=float(value), bytes=entry.get("bytes") or [])


def parse_logprobs(choice: dict[str, Any], provider: str = "openai") -> list[list[LogProb]] | None:
    """A choice's logprobs: per token, the chosen token first, then the other top candidates."""
    data = choice.get("logprobs")
    if not data:
        return None
    if not isinstance(data, dict):
        raise _malformed(provider, "logprobs must be an object", data)
    if "content" in data:  # chat format
        out = []
        for token in data["content"] or []:
            chosen = _logprob(token, provider)
            others = [_logprob(a, provider) for a in token.get("top_logprobs") or []]
            out.append([chosen, *(a for a in others if a.token != chosen.token)])
        return out
    tokens, values = data.get("tokens") or [], data.get("token_logprobs") or []  # legacy completions format
    tops = data.get("top_logprobs") or [None] * len(tokens)
    return [
        [LogProb(token=str(tok), logprob=float(val) if val is not None else 0.0)]
        + [LogProb(token=k, logprob=float(v)) for k, v in (top or {}).items() if k != tok]
        for tok, val, top in zip(tokens, values, tops, strict=False)
    ]


def _choice(body: Any, provider: str) -> dict[str, Any]:
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _malformed(provider, "the reply has no choices", body)
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _malformed(provider, "choices[0] must be an object", body)
    return choice


def _text(value: Any, what: str, provider: str, body: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _malformed(provider, f"{what} must be a string", body)
    return value


def _tool_calls(calls: Any, provider: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list) or len(calls) > MAX_TOOL_CALLS:
        raise _malformed(provider, f"tool_calls must be a list of at most {MAX_TOOL_CALLS} calls", calls)
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _malformed(provider, "each tool call needs a function with a name", call)
    return calls


def parse_chat(body: Any, provider: str) -> ChatResponse:
    """An OpenAI ``chat.completion`` body as a response (tool calls and reasoning in the message's extras)."""
    choice = _choice(body, provider)
    message = choice.get("message") or {}
    if not isinstance(message, dict):
        raise _malformed(provider, "choices[0].message must be an object", body)
    extra: dict[str, Any] = {}
    if message.keys() != _ROLE_AND_CONTENT:  # the usual answer has only these two: no tool calls, no reasoning
        if message.get("tool_calls"):
            extra["tool_calls"] = _tool_calls(message["tool_calls"], provider)
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning:
            extra["reasoning"] = _text(reasoning, "message.reasoning", provider, body)
    content = message.get("content")
    if type(content) is not str:
        content = _text(content, "message.content", provider, body)
    return chat_chunk(
        text_message(content, extra),
        raw=body,
        logprobs=parse_logprobs(choice, provider) if choice.get("logprobs") else None,
        usage=parse_usage(body, provider),
        additional_kwargs={"finish_reason": choice.get("finish_reason")},
    )


def parse_completion(body: Any, provider: str) -> CompletionResponse:
    """An OpenAI ``text_completion`` body as a response."""
    choice = _choice(body, provider)
    return completion_chunk(
        _text(choice.get("text"), "choices[0].text", provider, body),
        raw=body,
        logprobs=parse_logprobs(choice, provider),
        usage=parse_usage(body, provider),
        additional_kwargs={"finish_reason": choice.get("finish_reason")},
    )


def stream_json(event: ServerSentEvent, parser: StreamParser[Any]) -> dict[str, Any] | None:
    """The JSON chunk an event carries; None for ``[DONE]`` (which marks the parser done) and empty events."""
    if event.data == "[DONE]":
        parser.done = True
        return None
    if not event.data:
        return None
    try:
        chunk = decode_json(event.data)
    except ValueError as exc:
        raise StreamError(f"malformed stream event (not JSON): {event.data[:200]!r}", received=parser.text) from exc
    if not isinstance(chunk, dict):
        raise StreamError(f"malformed stream event: {event.data[:200]!r}", received=parser.text)
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise StreamError(f"the server reported an error mid-stream: {message}", received=parser.text)
    return chunk


def _stream_choice(chunk: dict[str, Any], parser: StreamParser[Any], provider: str) -> dict[str, Any] | None:
    choices = chunk.get("choices")
    if not choices:
        return None
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise _malformed(provider, "a stream chunk's choices must be a list of objects", chunk)
    choice = choices[0]
    if choice.get("finish_reason"):
        parser.finished = True
    return choice


class ChatStreamParser(StreamParser[ChatResponse]):
    """Assembles OpenAI chat chunks: text, reasoning, and tool calls from their streamed fragments."""

    def __init__(self, provider: str = "openai") -> None:
        super().__init__()
        self.provider = provider
        self.tool_calls: list[dict[str, Any]] = []
        self.reasoning = ""

    def _merge_tool_calls(self, fragments: Any) -> None:
        if not isinstance(fragments, list):
            raise _malformed(self.provider, "delta.tool_calls must be a list", fragments)
        for fragment in fragments:
            if not isinstance(fragment, dict):
                raise _malformed(self.provider, "each delta.tool_calls entry must be an object", fragment)
            index = fragment.get("index", len(self.tool_calls))
            if type(index) is not int or not 0 <= index < MAX_TOOL_CALLS or index > len(self.tool_calls):
                raise _malformed(
                    self.provider, f"tool call index must follow on (0..{MAX_TOOL_CALLS - 1}), not {index!r}", fragment
                )
            if index == len(self.tool_calls):
                self.tool_calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
            call = self.tool_calls[index]
            if fragment.get("id"):
                call["id"] = fragment["id"]
            function = fragment.get("function") or {}
            name = function.get("name")
            if name and name != call["function"]["name"]:
                # Some servers (and litellm) repeat the whole name in every fragment; OpenAI sends it once.
                call["function"]["name"] += name
            arguments = function.get("arguments")
            if arguments:
                call["function"]["arguments"] += _text(arguments, "tool call arguments", self.provider, fragment)

    def feed(self, event: ServerSentEvent) -> ChatResponse | None:
        chunk = stream_json(event, self)
        return None if chunk is None else self.feed_chunk(chunk)

    def feed_chunk(self, chunk: dict[str, Any]) -> ChatResponse | None:
        """One decoded chunk (``chat.completion.chunk``)."""
        usage = parse_usage(chunk, self.provider)
        choice = _stream_choice(chunk, self, self.provider)
        delta_text = ""
        logprobs = None
        if choice is not None:
            delta = choice.get("delta") or {}
            content = delta.get("content")  # a string, nearly always: checked inline, the rest by _text
            delta_text = content if type(content) is str else _text(content, "delta.content", self.provider, chunk)
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                self.reasoning += _text(reasoning, "delta.reasoning", self.provider, chunk)
            if delta.get("tool_calls"):
                self._merge_tool_calls(delta["tool_calls"])
            if choice.get("logprobs"):
                logprobs = parse_logprobs(choice, self.provider)
        elif usage is None:
            return None
        self.text += delta_text
        extra: dict[str, Any] = {}
        if self.tool_calls:
            extra["tool_calls"] = [{**c, "function": dict(c["function"])} for c in self.tool_calls]
        if self.reasoning:
            extra["reasoning"] = self.reasoning
        finish = choice.get("finish_reason") if choice is not None else None
        return chat_chunk(
            text_message(self.text, extra),
            delta=delta_text,
            raw=chunk,
            logprobs=logprobs,
            usage=usage,
            additional_kwargs={"finish_reason": finish} if finish else None,
        )


class CompletionStreamParser(StreamParser[CompletionResponse]):
    """Assembles OpenAI ``text_completion`` chunks."""

    def __init__(self, provider: str = "openai") -> None:
        super().__init__()
        self.provider = provider

    def feed(self, event: ServerSentEvent) -> CompletionResponse | None:
        chunk = stream_json(event, self)
        if chunk is None:
            return None
        usage = parse_usage(chunk, self.provider)
        choice = _stream_choice(chunk, self, self.provider)
        if choice is None and usage is None:
            return None
        delta = _text(choice.get("text"), "choices[0].text", self.provider, chunk) if choice else ""
        self.text += delta
        logprobs = parse_logprobs(choice, self.provider) if choice else None
        finish = choice.get("finish_reason") if choice else None
        extra = {"finish_reason": finish} if finish else None
        return completion_chunk(
            self.text, delta=delta, raw=chunk, logprobs=logprobs, usage=usage, additional_kwargs=extra
        )


# ---------------------------------------------------------------------------------------------------------------------
# request -> llmkit (the server side)

_ROLES = {role.value: role for role in MessageRole}
#: Keys of a client's message that llmkit keeps beside its role and content.
_MESSAGE_EXTRAS = ("tool_calls", "tool_call_id", "name")
_ROLE_AND_CONTENT = frozenset({"role", "content"})
#: Request keys that are not parameters of the call.
_STRUCTURAL = frozenset({"model", "messages", "stream", "stream_options", "tools", "tool_choice", "response_format"})


def from_openai_message(message: Any) -> ChatMessage:
    """An OpenAI chat message (as a client sends it) as a ``ChatMessage``; ``ValueError`` naming what is wrong."""
    role = _ROLES.get(message["role"]) if isinstance(message, dict) and isinstance(message.get("role"), str) else None
    if role is None:
        raise ValueError(f"each message needs a role among {sorted(_ROLES)}: {str(message)[:200]}")
    content = message.get("content")
    extra = (
        {}
        if message.keys() <= _ROLE_AND_CONTENT  # the usual message: nothing beside them
        else {key: message[key] for key in _MESSAGE_EXTRAS if message.get(key) is not None}
    )
    if content is None or isinstance(content, str):  # role and content checked: built without a second validation
        return text_message(content or "", extra, role=role)
    if not isinstance(content, list):
        raise ValueError(f"message content must be a string or a list of parts: {str(content)[:200]}")
    blocks: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append(TextBlock(text=str(part.get("text", ""))))
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url") if isinstance(image, dict) else image
            blocks.append(_image_block(str(url), image.get("detail") if isinstance(image, dict) else None))
        else:
            raise ValueError(f"unsupported content part type {kind!r}; supported: 'text', 'image_url'")
    return ChatMessage(role=message["role"], blocks=blocks, additional_kwargs=extra)


def _image_block(url: str, detail: str | None) -> ImageBlock:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mimetype = header[5:].split(";")[0] or None
        return ImageBlock(image=data.encode(), image_mimetype=mimetype, detail=detail)
    return ImageBlock(url=url, detail=detail)


@dataclass
class ChatRequest:
    """An OpenAI chat request, read: the model asked for, the messages, llmkit's call kwargs (``tools``,
    ``tool_choice``, ``json_schema``) and the sampling parameters, whether to stream and to include usage."""

    model: str
    messages: list[ChatMessage]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False

    def call_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``llm.chat(messages, **kwargs)``."""
        return dict(self.params)


def parse_chat_request(body: Any) -> ChatRequest:
    """An OpenAI ``/chat/completions`` request body; ``ValueError`` naming the field when it is malformed."""
    messages, params = parse_chat_call(body)
    options = body.get("stream_options") or {}
    return ChatRequest(
        model=str(body.get("model") or ""),
        messages=messages,
        params=params,
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
    )


def parse_chat_call(body: Any) -> tuple[list[ChatMessage], dict[str, Any]]:
    """The messages and the call's keyword arguments of an OpenAI ``/chat/completions`` request body (what
    :func:`parse_chat_request` reads, less the model and streaming): ``llm.chat(messages, **params)``."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    params = {key: value for key, value in body.items() if key not in _STRUCTURAL}
    if body.get("tools"):
        params["tools"] = body["tools"]
        if body.get("tool_choice") is not None:
            params["tool_choice"] = body["tool_choice"]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        params["json_schema"] = fmt["json_schema"]
    elif fmt is not None:
        params["response_format"] = fmt
    return [from_openai_message(m) for m in messages], params


def chat_request_body(request: ChatRequest) -> dict[str, Any]:
    """The inverse of :func:`parse_chat_request`: the request body a client would send."""
    params = dict(request.params)
    body: dict[str, Any] = {"model": request.model, "messages": [to_openai_message(m) for m in request.messages]}
    body.update(tools_body(params.pop("tools", None), params.pop("tool_choice", None)))
    spec = params.pop("json_schema", None)
    if spec is not None:  # as the client wrote it: the inverse is exact (a provider applies the strict rules)
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    body.update(params)
    if request.stream:
        body["stream"] = True
        if request.include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


# ---------------------------------------------------------------------------------------------------------------------
# llmkit -> reply (the server side)


def _usage_json(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    total = usage.total_tokens if usage.total_tokens is not None else prompt + completion
    body: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    if usage.cache_read_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def _finish_reason(response: ChatResponse) -> str:
    reason = response.additional_kwargs.get("finish_reason")
    if isinstance(reason, str) and reason:
        return reason
    return "tool_calls" if response.message.additional_kwargs.get("tool_calls") else "stop"


def chat_completion_json(response: ChatResponse, model: str, completion_id: str | None = None) -> dict[str, Any]:
    """A ``ChatResponse`` as an OpenAI ``chat.completion`` body."""
    message: dict[str, Any] = {"role": "assistant", "content": response.message.content}
    tool_calls = response.message.additional_kwargs.get("tool_calls")
    if tool_calls:
        message["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": completion_id or f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(response)}],
    }
    usage = _usage_json(response.usage)
    if usage is not None:
        body["usage"] = usage
    return body


class ChunkEncoder:
    """Encodes one llmkit stream as OpenAI ``chat.completion.chunk`` bodies: text deltas, tool-call deltas (from the
    accumulated calls each chunk carries), then a final chunk with the finish reason and, if asked, the usage."""

    def __init__(self, model: str, completion_id: str | None = None) -> None:
        self.model = model
        self.id = completion_id or f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self._sent_arguments: list[int] = []  # characters of each tool call's arguments already sent
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _tool_call_deltas(self, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        deltas = []
        for index, call in enumerate(calls):
            function = call.get("function") or {}
            arguments = function.get("arguments") or ""
            if index >= len(self._sent_arguments):
                self._sent_arguments.append(len(arguments))
                new_call = {"name": function.get("name", ""), "arguments": arguments}
                deltas.append({"index": index, "id": call.get("id"), "type": "function", "function": new_call})
            elif len(arguments) > self._sent_arguments[index]:
                deltas.append({"index": index, "function": {"arguments": arguments[self._sent_arguments[index] :]}})
                self._sent_arguments[index] = len(arguments)
        return deltas

    def encode(self, response: ChatResponse) -> dict[str, Any] | None:
        """The chunk for one streamed response (None when it carries nothing new)."""
        delta: dict[str, Any] = {}
        if response.delta:
            delta["content"] = response.delta
        calls = response.message.additional_kwargs.get("tool_calls")
        if calls:
            tool_deltas = self._tool_call_deltas(calls)
            if tool_deltas:
                delta["tool_calls"] = tool_deltas
        if not delta:
            return None
        if not self._started:
            self._started = True
            delta = {"role": "assistant", **delta}
        return self._chunk(delta)

    def final(self, last: ChatResponse | None, include_usage: bool) -> list[dict[str, Any]]:
        """The closing chunks: the finish reason, then (if asked) the usage chunk with empty choices."""
        reason = _finish_reason(last) if last is not None else "stop"
        chunks = [self._chunk({}, reason)]
        if include_usage:
            usage = _usage_json(last.usage if last is not None else None)
            chunks.append({**self._chunk({}), "choices": [], "usage": usage})
        return chunks


def sse(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line (``[DONE]`` given as the string)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()
