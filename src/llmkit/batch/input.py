"""Input lines -> requests, streamed: one line at a time, so a million-line file costs one line of memory.

A line is either OpenAI's batch format or a plain object:

- ``{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [...], ...}}``
  (``url`` ``/v1/completions`` with ``body.prompt`` is a completion);
- ``{"prompt": "..."}`` or ``{"messages": [...]}``, with an optional ``custom_id`` (default ``line-<n>``) and any
  sampling parameters beside it.

The body's ``model`` and ``stream`` are dropped: the job's model answers every line, in one piece. A line that is not
valid is a :class:`BadLine` (its number and what is wrong), which the job writes as an error record and goes on.

Example:
    >>> request = parse_line('{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "Hi"}], "n": 1}}', 1)
    >>> request.custom_id, request.kind, request.messages[0].content, request.params
    ('a', 'chat', 'Hi', {'n': 1})
    >>> parse_line('{"prompt": "Hello"}', 7).custom_id
    'line-7'
    >>> parse_line('{"prompt": 3}', 8)
    BadLine(custom_id='line-8', line=8, error="line 8: 'prompt' must be a string")
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic_core import from_json

from llmkit.types import ChatMessage, MessageRole

#: Keys of a plain line that are not sampling parameters.
_PLAIN_KEYS = frozenset({"custom_id", "prompt", "messages"})
#: Body keys the job decides itself.
_DROPPED = frozenset({"model", "stream", "stream_options"})


@dataclass(slots=True)
class BatchRequest:
    """One request of a job: its id, its line number (from 1), and what to send."""

    custom_id: str
    line: int
    kind: Literal["chat", "completion"]
    messages: list[ChatMessage] | None = None
    prompt: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BadLine:
    """A line that is not a request: written as an error record with its number."""

    custom_id: str
    line: int
    error: str


def _custom_id(data: Any, line: int) -> str:
    if isinstance(data, dict):
        value = data.get("custom_id")
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return f"line-{line}"


@functools.cache
def _parse_chat_call() -> Callable[[Any], tuple[list[ChatMessage], dict[str, Any]]]:
    # imported once (the wire module pulls in the HTTP stack), not on every line: an import statement in a function
    # costs ~1 us each time it runs
    from llmkit.wire.openai import parse_chat_call

    return parse_chat_call


def _chat(body: dict[str, Any], custom_id: str, line: int) -> BatchRequest:
    # the request parser leaves out model, stream and stream_options (_DROPPED) itself
    messages, params = _parse_chat_call()(body)
    return BatchRequest(custom_id, line, "chat", messages=messages, params=params)


def line_id(text: str | bytes, line: int) -> str:
    """The ``custom_id`` :func:`parse_line` gives the line (``line-<n>`` when it has none, or is not JSON), without
    reading the request: what a Ray job's driver needs to skip done lines while the workers parse the rest."""
    try:
        data = from_json(text)
    except ValueError:
        return f"line-{line}"
    return _custom_id(data, line)


def parse_line(text: str | bytes, line: int) -> BatchRequest | BadLine:
    """One input line as a request, or a :class:`BadLine` saying what is wrong with it."""
    try:
        data = from_json(text)  # pydantic-core's parser: ~4x json.loads on a typical line
    except ValueError as exc:
        return BadLine(f"line-{line}", line, f"line {line}: not JSON ({exc})")
    custom_id = _custom_id(data, line)
    try:
        return _parse(data, custom_id, line)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        prefix = f"line {line}: "
        return BadLine(custom_id, line, message if message.startswith(prefix) else prefix + message)


def _parse(data: Any, custom_id: str, line: int) -> BatchRequest:
    if not isinstance(data, dict):
        raise ValueError("a line must be a JSON object")
    if "body" in data:  # OpenAI's batch format
        body, url = data["body"], data.get("url", "/v1/chat/completions")
        if not isinstance(body, dict):
            raise ValueError("'body' must be a JSON object")
        if url in ("/v1/completions", "/completions"):
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                raise ValueError("'body.prompt' must be a string for /v1/completions")
            params = {k: v for k, v in body.items() if k not in _DROPPED and k != "prompt" and v is not None}
            return BatchRequest(custom_id, line, "completion", prompt=prompt, params=params)
        if url not in ("/v1/chat/completions", "/chat/completions"):
            raise ValueError(f"url {url!r} is not supported: use /v1/chat/completions or /v1/completions")
        return _chat(body, custom_id, line)
    params = {k: v for k, v in data.items() if k not in _PLAIN_KEYS and k not in _DROPPED}
    if "messages" in data:
        return _chat({**params, "messages": data["messages"]}, custom_id, line)
    prompt = data.get("prompt")
    if prompt is None:
        raise ValueError("a line needs 'body' (OpenAI's batch format), 'messages' or 'prompt'")
    if not isinstance(prompt, str):
        raise ValueError("'prompt' must be a string")
    message = ChatMessage(role=MessageRole.USER, content=prompt)
    return BatchRequest(custom_id, line, "chat", messages=[message], params=params)


def read_lines(source: str | Path | Iterable[Any]) -> Generator[tuple[int, str | bytes], None, None]:
    """``(line number, text)`` for each non-blank line of a JSONL file, streamed; or of an iterable of lines or
    dicts (a dict is serialised, so both paths read the same way)."""
    if isinstance(source, str | Path):
        with open(source, "rb") as lines:
            for number, raw in enumerate(lines, 1):
                if raw.strip():
                    yield number, raw
        return
    for number, item in enumerate(source, 1):
        if isinstance(item, dict):
            yield number, json.dumps(item)
        elif isinstance(item, str | bytes) and item.strip():
            yield number, item


def count_lines(path: str | Path) -> int:
    """Lines in a file, read in 1 MiB blocks (for the progress display's total; about 1 s per GB)."""
    total = 0
    last = b"\n"
    with open(path, "rb") as data:
        while block := data.read(1 << 20):
            total += block.count(b"\n")
            last = block[-1:]
    return total + (last != b"\n")
