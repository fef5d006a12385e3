"""aiXplain's streamed answers: one parser for every line format the service is known to send, and the SDK's
:class:`ModelResponseStreamer`.

Where the SDK's v1 streamer is wrong, this reads right (Part B.11 of the protocol notes): the ``data:`` prefix is
taken off the start of a line only (with or without the space), never out of the text; blank separator lines and
comments are not turned into empty chunks; OpenAI-style chunks, ``{"status": ...}`` end envelopes and error events
are understood; ``[DONE]`` ends the stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from llmkit.errors import StreamError
from llmkit.providers.aixplain.response import ModelResponse, ResponseStatus, error_message_of

_END_STATUSES = {"SUCCESS", "COMPLETED"}
_ERROR_STATUSES = {"FAILED", "ERROR"}


@dataclass(slots=True)
class StreamEvent:
    """What one line carried."""

    text: str = ""
    done: bool = False
    error: str | None = None
    usage: dict[str, Any] | None = None
    used_credits: float | None = None


def content_text(value: Any) -> str:
    """The text in a ``data`` value: a string, or an object's ``text``/``output``, else its JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("text", "output"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return "" if value is None else json.dumps(value)


def _openai_chunk(body: dict[str, Any]) -> StreamEvent:
    event = StreamEvent(usage=body.get("usage") if isinstance(body.get("usage"), dict) else None)
    for choice in body.get("choices") or []:
        delta = choice.get("delta") or {}
        event.text += delta.get("content") or ""
    return event


def parse_line(line: str) -> StreamEvent | None:
    """One line of the stream, or None for lines that carry nothing (blank lines, comments, SSE fields)."""
    line = line.strip()
    if not line or line.startswith(":"):
        return None
    if line.startswith("data:"):
        line = line[5:].lstrip(" ")
    elif line.startswith(("event:", "id:", "retry:")):
        return None
    if line == "[DONE]":
        return StreamEvent(done=True)
    try:
        body = json.loads(line)
    except ValueError:
        return StreamEvent(text=line)  # plain text, as the SDK passes it on
    if not isinstance(body, dict):
        return StreamEvent(text=line)
    status = str(body.get("status") or "").upper()
    if "error" in body or "error_message" in body or "supplierError" in body or status in _ERROR_STATUSES:
        return StreamEvent(error=error_message_of(body) or f"the stream reported status {status or 'FAILED'}")
    credits = body.get("usedCredits")
    if "choices" in body:
        event = _openai_chunk(body)
    elif "data" in body:
        event = StreamEvent(text=content_text(body["data"]))
    else:
        event = StreamEvent(usage=body.get("usage") if isinstance(body.get("usage"), dict) else None)
    event.done = status in _END_STATUSES
    event.used_credits = credits if isinstance(credits, int | float) else None
    return event


class ModelResponseStreamer:
    """The chunks of ``run(..., stream=True)``: iterate to get one :class:`ModelResponse` per piece of text.

    ``status`` is ``IN_PROGRESS`` until the end marker (then ``SUCCESS``) or an error event (then ``FAILED``, and
    the last chunk carries ``error_message``). Closing the streamer (or leaving its ``with`` block) closes the
    connection.

    Example:
        >>> lines = ['data: {"data": "Hel"}', "", 'data: {"data": "lo"}', "data: [DONE]"]
        >>> streamer = ModelResponseStreamer(iter(lines))
        >>> "".join(chunk.data for chunk in streamer), streamer.status
        ('Hello', <ResponseStatus.SUCCESS: 'SUCCESS'>)
    """

    def __init__(
        self, lines: Any, *, failure: ModelResponse | None = None, on_close: Callable[[], None] | None = None
    ) -> None:
        self._lines = lines
        self._failure = failure
        self._on_close = on_close
        self.status = ResponseStatus.IN_PROGRESS if failure is None else ResponseStatus.FAILED
        self._chunks = self._generate()

    def _generate(self) -> Generator[ModelResponse, None, None]:
        if self._failure is not None:
            yield self._failure
            return
        received = ""
        try:
            for line in self._lines:
                event = parse_line(line)
                if event is None:
                    continue
                received += event.text
                if event.error is not None:
                    self.status = ResponseStatus.FAILED
                    yield ModelResponse(status=self.status, completed=True, error_message=event.error)
                    return
                if event.done:
                    self.status = ResponseStatus.SUCCESS
                if event.text or event.usage or event.used_credits:
                    yield ModelResponse(
                        status=self.status,
                        data=event.text,
                        usage=event.usage,
                        used_credits=event.used_credits or 0.0,
                        completed=event.done,
                    )
                if event.done:
                    return
            self.status = ResponseStatus.SUCCESS
        except StreamError as exc:
            exc.received = received
            raise
        finally:
            self.close()

    def __iter__(self) -> ModelResponseStreamer:
        return self

    def __next__(self) -> ModelResponse:
        return next(self._chunks)

    def close(self) -> None:
        """Stop reading and close the connection."""
        close = getattr(self._lines, "close", None)
        if close is not None:
            close()
        if self._on_close is not None:  # the response, even when iteration never started
            self._on_close()

    def __enter__(self) -> ModelResponseStreamer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._chunks.close()
        self.close()
