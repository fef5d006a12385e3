"""Server-sent events, decoded per the WHATWG spec from a stream of lines.

Handles multi-line ``data``, comments, ``event``/``id``/``retry`` fields, ``data:`` with or without the space,
CRLF (the line splitter's job), and a last event that the server did not terminate with a blank line.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass


@dataclass(slots=True)
class ServerSentEvent:
    """One event: its ``data`` (lines joined by ``\\n``), ``event`` type, ``id`` and ``retry``."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed lines (without their terminators); complete events come back from :meth:`feed`."""

    __slots__ = ("_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line; return the event it completes, if any."""
        if not line:
            return self.flush()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def flush(self) -> ServerSentEvent | None:
        """Dispatch the pending event (a blank line, or the end of the stream)."""
        if not self._data and not self._event:
            return None
        data = self._data
        event = ServerSentEvent(
            data=data[0] if len(data) == 1 else "\n".join(data), event=self._event or "message", id=self._id,
            retry=self._retry,
        )
        self._data = []
        self._event = ""
        self._retry = None
        return event


def iter_sse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Events from lines."""
    decoder = SSEDecoder()
    feed = decoder.feed
    data = decoder._data
    for line in lines:
        if line.startswith("data: "):  # the common case, inlined: one more line of data
            data.append(line[6:])
            continue
        event = feed(line)
        if event is not None:
            data = decoder._data  # flush() started a new list
            yield event
    last = decoder.flush()
    if last is not None:
        yield last


async def aiter_sse(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """Events from async lines."""
    decoder = SSEDecoder()
    feed = decoder.feed
    data = decoder._data
    async for line in lines:
        if line.startswith("data: "):
            data.append(line[6:])
            continue
        event = feed(line)
        if event is not None:
            data = decoder._data
            yield event
    last = decoder.flush()
    if last is not None:
        yield last
