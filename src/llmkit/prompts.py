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

import re
import string
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from llmkit.errors import TemplateError
from llmkit.types import ChatMessage, MessageRole, TextBlock


def messages_to_prompt(messages: Sequence[ChatMessage]) -> str:
    """The generic flattening of a conversation: one ``role: content`` line per message, then ``assistant: ``."""
    lines = [f"{m.role.value}: {m.content or ''}" for m in messages]
    lines.append(f"{MessageRole.ASSISTANT.value}: ")
    return "\n".join(lines)


def completion_to_prompt(completion: str) -> str:
    """The identity: a completion prompt is sent as it is."""
    return completion


_FIX_BRACES = "escape literal braces as {{ and }}"


def _excerpt(template: str) -> str:
    return repr(template if len(template) <= 80 else template[:77] + "...")


def _template_vars(template: str, where: str = "PromptTemplate") -> list[str]:
    """The variables of ``template``, in order; a :class:`~llmkit.errors.TemplateError` naming the fix for anything
    ``str.format`` would fail on or misread (stray braces, a positional ``{}``, JSON written with single braces).

    This is the one parser of templates: every template is checked here when it is built, not when it is filled.

    Example:
        >>> _template_vars('Answer as {"city": ...} about {topic}')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        llmkit.errors.TemplateError: PromptTemplate: '{"city": ...}' in ... is not a variable: escape literal ...
        >>> _template_vars('Answer as {{"city": ...}} about {topic}')
        ['topic']
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # "Single '}' encountered", "unmatched '{'", "expected '}' before end of string"
        raise TemplateError(
            f"{where}: the template {_excerpt(template)} has a stray brace ({exc}): {_FIX_BRACES}"
        ) from exc
    names: list[str] = []
    for _, field_name, format_spec, conversion in parsed:
        if field_name is None:
            continue
        field = f"{{{field_name}{'!' + conversion if conversion else ''}{':' + format_spec if format_spec else ''}}}"
        base = re.split(r"[.\[]", field_name, maxsplit=1)[0]
        if field_name == "" or base.isdigit():
            raise TemplateError(
                f"{where}: positional {field} in {_excerpt(template)} is not supported: name the variable "
                f"(e.g. {{topic}}, filled with topic=...), or {_FIX_BRACES}"
            )
        if not base.isidentifier():
            raise TemplateError(f"{where}: {field!r} in {_excerpt(template)} is not a variable: {_FIX_BRACES}")
        if conversion not in (None, "r", "s", "a"):
            raise TemplateError(
                f"{where}: {field} has an unknown conversion !{conversion} (use !r, !s or !a), or {_FIX_BRACES}"
            )
        if format_spec and ("{" in format_spec or "}" in format_spec):
            raise TemplateError(
                f"{where}: {field} nests a replacement field in its format spec, which is not supported: "
                f"fill the spec in the value itself, or {_FIX_BRACES}"
            )
        if base not in names:
            names.append(base)
    return names


def _format(template: str, variables: dict[str, Any], where: str) -> str:
    missing = [name for name in _template_vars(template, where) if name not in variables]
    if missing:
        passes = ", ".join(f"{name}=..." for name in missing)
        raise TemplateError(
            f"{where}: missing variable(s) {', '.join(map(repr, missing))}: pass {passes} "
            f"(to format or partial_format), or {_FIX_BRACES} if they are meant literally"
        )
    try:
        return template.format(**variables)
    except (ValueError, IndexError, KeyError, AttributeError, TypeError) as exc:
        # A format spec that does not suit the value ({n:d} with a string), or {a.b}/{a[k]} that the value lacks.
        raise TemplateError(
            f"{where}: the template {_excerpt(template)} could not be filled: {type(exc).__name__}: {exc}"
        ) from exc


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
        data.setdefault("template_vars", _template_vars(template, "PromptTemplate"))
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
            names.extend(v for v in _template_vars(message.content or "", "ChatPromptTemplate") if v not in names)
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
