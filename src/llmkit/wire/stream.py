"""The base of stream parsers: one instance per stream turns its events into responses."""

from __future__ import annotations

from typing import Generic, TypeVar

from llmkit.errors import StreamError
from llmkit.transport import ServerSentEvent
from llmkit.types import ChatResponse, CompletionResponse

R = TypeVar("R", ChatResponse, CompletionResponse)


class StreamParser(Generic[R]):
    """Turns a stream's events into responses. It accumulates ``text`` (so a broken stream can report what arrived),
    sets ``done`` at the service's end marker and ``finished`` when the service gave a finish reason; a stream whose
    body ends with neither was cut short."""

    def __init__(self) -> None:
        self.text = ""
        self.done = False
        self.finished = False

    @property
    def complete(self) -> bool:
        """Whether the service said the answer is complete (end marker or finish reason)."""
        return self.done or self.finished

    def ensure_complete(self) -> None:
        """At the end of the body: a stream with neither end marker nor finish reason was cut short, and is a
        :class:`~llmkit.errors.StreamError` carrying what was received, never a short answer."""
        if not self.complete:
            raise StreamError(
                "the stream ended before the server said it was complete (no [DONE], no finish reason)",
                received=self.text,
            )

    def feed(self, event: ServerSentEvent) -> R | None:
        """The response for one event, or None for events that carry nothing."""
        raise NotImplementedError
