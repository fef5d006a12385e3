"""Prompt templates and the default message/prompt transforms.

Example:
    >>> from llmkit.prompts import PromptTemplate
    >>> t = PromptTemplate("Write a haiku about {topic}.")
    >>> t.format(topic="cats")
    'Write a haiku about cats.'
    >>> t.partial_format(topic="dogs").format()
    'Write a haiku about dogs.'
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from llmkit.errors import ConfigurationError
from llmkit.types import ChatMessage, MessageRole, TextBlock


def messages_to_prompt(messages: Sequence[ChatMessage]) -> str:
    """The generic flattening of a conversation: one ``role: content`` line per message, then ``assistant: ``."""
    lines = [f"{m.role.value}: {m.content or ''}" for m in messages]
    lines.append(f"{MessageRole.ASSISTANT.value}: ")
    return "\n".join(lines)


def completion_to_prompt(completion: str) -> str:
    """The identity: a completion prompt is sent as it is."""
    return completion


def _template_vars(template: str) -> list[str]:
    names: list[str] = []
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name is not None and field_name and field_name not in names:
            names.append(field_name.split(".")[0].split("[")[0])
    return names


def _format(template: str, variables: dict[str, Any], where: str) -> str:
    missing = [name for name in _template_vars(template) if name not in variables]
    if missing:
        raise ConfigurationError(f"{where} needs the variable(s) {', '.join(map(repr, missing))}, which were not given")
    return template.format(**variables)


class BasePromptTemplate(BaseModel):
    """A template that formats to a string (``format``) or to chat messages (``format_messages``)."""

    template_vars: list[str] = Field(default_factory=list)
    partial_vars: dict[str, Any] = Field(default_factory=dict, description="Variables filled by partial_format.")

    def format(self, **variables: Any) -> str:
        """Fill the template and return the prompt text."""
        raise NotImplementedError

    def format_messages(self, **variables: Any) -> list[ChatMessage]:
        """Fill the template and return chat messages."""
        raise NotImplementedError

    def partial_format(self, **variables: Any) -> BasePromptTemplate:
        """Return a copy with some variables filled in."""
        return self.model_copy(update={"partial_vars": {**self.partial_vars, **variables}})

    def get_template(self) -> str:
        """The template text."""
        raise NotImplementedError


class PromptTemplate(BasePromptTemplate):
    """A text template with ``{variables}``.

    Example:
        >>> PromptTemplate("Q: {q}").format_messages(q="why")[0].content
        'Q: why'
    """

    template: str

    def __init__(self, template: str, **data: Any) -> None:
        data.setdefault("template_vars", _template_vars(template))
        super().__init__(template=template, **data)

    def format(self, **variables: Any) -> str:
        return _format(self.template, {**self.partial_vars, **variables}, "PromptTemplate")

    def format_messages(self, **variables: Any) -> list[ChatMessage]:
        return [ChatMessage(role=MessageRole.USER, content=self.format(**variables))]

    def get_template(self) -> str:
        return self.template


class ChatPromptTemplate(BasePromptTemplate):
    """A template made of chat messages whose text has ``{variables}``.

    Example:
        >>> t = ChatPromptTemplate.from_messages([("system", "You are {who}."), ("user", "{q}")])
        >>> [m.content for m in t.format_messages(who="terse", q="Hi")]
        ['You are terse.', 'Hi']
    """

    message_templates: list[ChatMessage]

    def __init__(self, message_templates: Sequence[ChatMessage], **data: Any) -> None:
        names: list[str] = []
        for message in message_templates:
            names.extend(v for v in _template_vars(message.content or "") if v not in names)
        data.setdefault("template_vars", names)
        super().__init__(message_templates=list(message_templates), **data)

    @classmethod
    def from_messages(cls, messages: Sequence[ChatMessage | tuple[str, str]], **kwargs: Any) -> ChatPromptTemplate:
        """Build from messages or ``(role, template)`` pairs."""
        built = [m if isinstance(m, ChatMessage) else ChatMessage(role=m[0], content=m[1]) for m in messages]
        return cls(built, **kwargs)

    def format_messages(self, **variables: Any) -> list[ChatMessage]:
        variables = {**self.partial_vars, **variables}
        out = []
        for message in self.message_templates:
            filled = message.model_copy(deep=True)
            for block in filled.blocks:  # block by block: a message may hold images besides its text
                if isinstance(block, TextBlock):
                    block.text = _format(block.text, variables, "ChatPromptTemplate")
            out.append(filled)
        return out

    def format(self, **variables: Any) -> str:
        return messages_to_prompt(self.format_messages(**variables))

    def get_template(self) -> str:
        return "\n".join(f"{m.role.value}: {m.content or ''}" for m in self.message_templates)
