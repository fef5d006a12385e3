"""Capabilities: what a model natively supports, declared as data.

A provider states what its service has (which families of endpoints, native streaming, structured-output modes,
tool calling, images); :class:`~llmkit.llm.LLM` routes on it, structured output and tool calling read it, and
wrappers forward it. Nothing is guessed from which methods a class happens to override, except for subclasses that
declare nothing (a user's own model), whose capabilities are derived once from the primitives they implement.

Example:
    >>> from llmkit.capabilities import Capabilities
    >>> from llmkit.structured import PydanticProgramMode
    >>> caps = Capabilities(chat=True, structured_modes=frozenset({PydanticProgramMode.JSON_SCHEMA}))
    >>> caps.supports(PydanticProgramMode.JSON_SCHEMA), caps.completion
    (True, False)
    >>> caps.without_mode(PydanticProgramMode.JSON_SCHEMA).structured_modes
    frozenset()
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmkit.structured import PydanticProgramMode


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a model natively supports.

    Attributes:
        chat: the service has a chat endpoint (messages in, a message out).
        completion: the service has a text-completion endpoint (a prompt in, text out).
        streaming: the service streams its answer (otherwise a stream yields the whole answer as one chunk).
        structured_modes: the structured-output modes the service supports natively (prompt-and-parse always works).
        tool_calling: the service returns native tool calls.
        vision: the service accepts images in messages.
        replay_safe: a call may be sent again after an ambiguous failure (a 5xx, a timeout, a reset). False for
            services where a call starts billable work (an aiXplain job), which routers then never re-send.
        assistant_prefill: a trailing assistant message is continued, not answered (a router may resume a broken
            stream there).
    """

    chat: bool = True
    completion: bool = False
    streaming: bool = True
    structured_modes: frozenset[PydanticProgramMode] = frozenset()
    tool_calling: bool = False
    vision: bool = False
    replay_safe: bool = True
    assistant_prefill: bool = False

    def __post_init__(self) -> None:
        if not (self.chat or self.completion):
            raise ValueError("a model needs at least one family: chat=True or completion=True")

    def supports(self, mode: PydanticProgramMode) -> bool:
        """Whether ``mode`` is a native structured-output mode of this model."""
        return mode in self.structured_modes

    def without_mode(self, mode: PydanticProgramMode) -> Capabilities:
        """The same capabilities, less one structured-output mode (one the service turned out to refuse)."""
        return replace(self, structured_modes=self.structured_modes - {mode})


__all__ = ["Capabilities"]
