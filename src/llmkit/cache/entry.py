"""What the cache stores for one request: a stream's chunks, or one answer, as versioned JSON lines.

The first line says what the entry is (format, endpoint, stream or not); each further line is one response as
pydantic writes it, so a hit is read back by pydantic's own JSON parser in one step. A stream is kept chunk for chunk
(text, tool-call and thinking deltas, logprobs, usage, finish reason: every field of every chunk), so a replay yields
exactly what the first run yielded. Chunks repeat the text so far; a chunk whose text is the previous text plus its
delta is stored without the text (its line starts with ``+``) and rebuilt on reading, so a long stream costs its
length, not its length squared. A stream's entry ends with one more line, the whole answer (its last chunk with the
text written out and no delta), so a cached stream answers a plain call by reading one line.

Example:
    >>> from llmkit.cache.entry import Recording, Entry
    >>> from llmkit.types import CompletionResponse
    >>> recording = Recording("complete", stream=True)
    >>> recording.add(CompletionResponse(text="Hel", delta="Hel"))
    >>> recording.add(CompletionResponse(text="Hello", delta="lo"))
    >>> [c.text for c in Entry.decode(recording.encode()).responses()]
    ['Hel', 'Hello']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from llmkit.types import ChatResponse, CompletionResponse, TextBlock

Response = ChatResponse | CompletionResponse
FORMAT = 3
_APPENDED = b"+"  # starts the line of a chunk stored without its text: the previous text plus its delta


class CorruptEntry(Exception):
    """Stored bytes that are not an entry of this format (a foreign writer, a newer llmkit, damage)."""


def _text_of(response: Response) -> str | None:
    """The response's text when it is plain text (a completion, or a chat message of one text block)."""
    if isinstance(response, CompletionResponse):
        return response.text
    blocks = response.message.blocks
    return blocks[0].text if len(blocks) == 1 and type(blocks[0]) is TextBlock else None


def _json(response: Response) -> bytes:
    try:
        return response.model_dump_json().encode()
    except (ValueError, TypeError):  # a provider's raw object with no JSON form: keep everything else
        return response.model_copy(update={"raw": None}).model_dump_json().encode()


class Recording:
    """Chunks (or one answer) collected as JSON lines while a call runs; :meth:`encode` makes the entry."""

    def __init__(self, endpoint: str, stream: bool) -> None:
        self.endpoint, self.stream = endpoint, stream
        self.lines: list[bytes] = []
        self._text: str | None = None
        self._last: Response | None = None

    def add(self, response: Response) -> None:
        """Record the next chunk (or the answer)."""
        text, delta = _text_of(response), response.delta
        if self._text is not None and text is not None and delta is not None and text == self._text + delta:
            thinned = (
                response.model_copy(update={"message": response.message.model_copy(update={"blocks": []})})
                if isinstance(response, ChatResponse)
                else response.model_copy(update={"text": ""})
            )
            self.lines.append(_APPENDED + _json(thinned))
        else:
            self.lines.append(_json(response))
        self._text = text
        self._last = response

    @property
    def chunks(self) -> int:
        """How many chunks were recorded."""
        return len(self.lines)

    def encode(self) -> bytes:
        """The entry as bytes."""
        header = json.dumps({"format": FORMAT, "endpoint": self.endpoint, "stream": self.stream}).encode()
        lines = self.lines
        if self.stream and self._last is not None:  # the whole answer, for plain calls
            lines = [*lines, _json(self._last.model_copy(update={"delta": None}))]
        return b"\n".join([header, *lines])


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached request, read back: ``endpoint`` is ``chat`` or ``complete``; ``stream`` whether it was a stream."""

    endpoint: str
    stream: bool
    lines: list[bytes]

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """Read stored bytes (raises :class:`CorruptEntry` for anything that is not an entry of this format)."""
        header, _, body = data.partition(b"\n")
        try:
            head = json.loads(header)
            if head.get("format") != FORMAT or head.get("endpoint") not in ("chat", "complete") or not body:
                raise CorruptEntry("not an llmkit cache entry of this format")
            lines = body.split(b"\n")
            if head["stream"] and len(lines) < 2:  # a stream's chunks, then its whole answer
                raise CorruptEntry("a stream entry without its chunks")
            return cls(head["endpoint"], bool(head["stream"]), lines)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc

    def _read(self, line: bytes, text: str) -> Response:
        model = ChatResponse if self.endpoint == "chat" else CompletionResponse
        if not line.startswith(_APPENDED):
            return model.model_validate_json(line)
        response = model.model_validate_json(line[1:])
        whole = text + (response.delta or "")
        if isinstance(response, ChatResponse):
            response.message.blocks = [TextBlock(text=whole)]
        else:
            response.text = whole
        return response

    def responses(self, **extra: Any) -> list[Response]:
        """Every chunk as it was yielded (one response for a plain answer); ``extra`` goes into each one's
        ``additional_kwargs``."""
        out: list[Response] = []
        text = ""
        try:
            for line in self.lines[:-1] if self.stream else self.lines:
                response = self._read(line, text)
                text = _text_of(response) or ""
                response.additional_kwargs.update(extra)
                out.append(response)
        except (ValueError, TypeError, ValidationError) as exc:
            raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc
        return out

    def answer(self, **extra: Any) -> Response:
        """The whole answer: the one response, or a stream's last chunk (which carries the text so far) without its
        delta; ``extra`` goes into its ``additional_kwargs``."""
        try:
            response = self._read(self.lines[-1], "")
        except (ValueError, TypeError, ValidationError) as exc:
            raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc
        response.additional_kwargs.update(extra)
        return response
