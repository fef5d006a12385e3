"""What the cache stores for one request: a stream's chunks, or one answer, as versioned JSON bytes.

A stream is kept chunk for chunk (text, tool-call and thinking deltas, logprobs, usage, finish reason: every field of
every chunk), so a replay yields exactly what the first run yielded. Chunks repeat the text so far; a chunk whose text
is the previous text plus its delta is stored as just the delta and rebuilt on reading, so a long stream costs its
length, not its length squared. A stream's last chunk holds the whole answer, so a cached stream also answers a
plain call.

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

from llmkit.types import ChatResponse, CompletionResponse

Response = ChatResponse | CompletionResponse
FORMAT = 1
_APPEND = "+"  # marks a chunk whose text is the previous chunk's text plus its delta


class CorruptEntry(Exception):
    """Stored bytes that are not an entry of this format (a foreign writer, a newer llmkit, damage)."""


def _dump(response: Response) -> dict[str, Any]:
    try:
        return response.model_dump(mode="json")
    except (ValueError, TypeError):  # a provider's raw object with no JSON form: keep everything else
        return response.model_copy(update={"raw": None}).model_dump(mode="json")


def _text_of(chunk: dict[str, Any]) -> str | None:
    """The chunk's text when it is plain text (a completion, or a chat message of one text block)."""
    if "text" in chunk:
        return chunk["text"] if isinstance(chunk["text"], str) else None
    blocks = chunk["message"]["blocks"]
    if len(blocks) == 1 and blocks[0].get("block_type") == "text" and set(blocks[0]) == {"block_type", "text"}:
        return str(blocks[0]["text"])
    return None


def _with_text(chunk: dict[str, Any], text: str) -> None:
    if "message" in chunk:
        chunk["message"]["blocks"] = [{"block_type": "text", "text": text}]
    else:
        chunk["text"] = text


class Recording:
    """Chunks (or one answer) collected as JSON data while a call runs; :meth:`encode` makes the entry."""

    def __init__(self, endpoint: str, stream: bool) -> None:
        self.endpoint, self.stream = endpoint, stream
        self.chunks: list[dict[str, Any]] = []
        self._text: str | None = None

    def add(self, response: Response) -> None:
        """Record the next chunk (or the answer)."""
        chunk = _dump(response)
        text, delta = _text_of(chunk), chunk.get("delta")
        if self._text is not None and text is not None and isinstance(delta, str) and text == self._text + delta:
            if "message" in chunk:
                chunk["message"]["blocks"] = _APPEND
            else:
                chunk["text"] = _APPEND
        self._text = text
        self.chunks.append(chunk)

    def encode(self) -> bytes:
        """The entry as compact JSON bytes."""
        body = {"format": FORMAT, "endpoint": self.endpoint, "stream": self.stream, "chunks": self.chunks}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached request, read back: ``endpoint`` is ``chat`` or ``complete``; ``stream`` whether it was a stream."""

    endpoint: str
    stream: bool
    chunks: list[dict[str, Any]]

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """Read stored bytes (raises :class:`CorruptEntry` for anything that is not an entry of this format)."""
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT or body.get("endpoint") not in ("chat", "complete") or not body["chunks"]:
                raise CorruptEntry("not an llmkit cache entry of this format")
            return cls(body["endpoint"], bool(body["stream"]), list(body["chunks"]))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc

    def _model(self) -> type[ChatResponse] | type[CompletionResponse]:
        return ChatResponse if self.endpoint == "chat" else CompletionResponse

    def _expanded(self, only_last: bool) -> list[dict[str, Any]]:
        """The chunks with every appended text written out (just the last one when ``only_last``)."""
        out: list[dict[str, Any]] = []
        text = ""
        for index, chunk in enumerate(self.chunks):
            stored = chunk["message"]["blocks"] if "message" in chunk else chunk.get("text")
            if stored == _APPEND:
                text += chunk["delta"]
                if not only_last or index == len(self.chunks) - 1:
                    chunk = json.loads(json.dumps(chunk))  # the stored entry stays as stored
                    _with_text(chunk, text)
            else:
                text = _text_of(chunk) or ""
            if not only_last or index == len(self.chunks) - 1:
                out.append(chunk)
        return out

    def responses(self) -> list[Response]:
        """Every chunk as it was yielded (one response for a plain answer)."""
        try:
            return [self._model().model_validate(chunk) for chunk in self._expanded(only_last=False)]
        except (ValueError, TypeError, KeyError, ValidationError) as exc:
            raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc

    def answer(self, **extra: Any) -> Response:
        """The whole answer: the one response, or a stream's last chunk (which carries the text so far) without its
        delta; ``extra`` goes into its ``additional_kwargs``."""
        try:
            last = self._expanded(only_last=True)[0] if self.stream else self.chunks[0]
            if self.stream or extra:
                last = {**last, "additional_kwargs": {**last.get("additional_kwargs", {}), **extra}}
                if self.stream:
                    last["delta"] = None
            return self._model().model_validate(last)
        except (ValueError, TypeError, KeyError, ValidationError) as exc:
            raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc
