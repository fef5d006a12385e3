"""MockLLM: a deterministic LLM for your own tests.

It answers with scripted replies (in order, then cycling) or echoes the last user message; it streams word by word;
asked for structured output or a tool call, it produces a schema-valid instance or valid arguments generated from the
JSON schema.

Example:
    >>> from llmkit import MockLLM
    >>> llm = MockLLM(responses=["one", "two"])
    >>> [llm.complete("x").text for _ in range(3)]
    ['one', 'two', 'one']
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import Field, PrivateAttr

from llmkit.capabilities import Capabilities
from llmkit.errors import ConfigurationError
from llmkit.llm import LLM
from llmkit.structured import PydanticProgramMode
from llmkit.types import ChatMessage, ChatResponse, CompletionResponse, LLMMetadata, MessageRole, Usage

#: How deep recursive schemas are followed before optional parts (empty lists, non-recursive options) are chosen.
_RECURSION_DEPTH = 3
_MAX_DEPTH = 32


def example_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value valid for a JSON schema: defaults and enum members first, else the simplest value of the type that
    satisfies its bounds, lengths, multiples and (simple) patterns. Recursive schemas end as soon as they may
    (empty lists, non-recursive options); one with no finite instance is a ``ConfigurationError``.

    Example:
        >>> example_from_schema({"type": "integer", "minimum": 3, "maximum": 9, "multipleOf": 4})
        4
    """
    if depth > _MAX_DEPTH:
        raise ConfigurationError("MockLLM cannot build a finite instance of this schema: a required field recurses")
    root = root if root is not None else schema
    deeper = depth + 1
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return example_from_schema(root.get("$defs", {}).get(name, {}), root, deeper)
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            if depth >= _RECURSION_DEPTH:  # prefer an option that does not recurse, then null
                plain = [o for o in schema[key] if "$ref" not in json.dumps(o)]
                options = plain or options
            return example_from_schema(options[0], root, deeper)
    if "allOf" in schema:
        return example_from_schema(schema["allOf"][0], root, deeper)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", props))
        return {
            name: example_from_schema(sub, root, deeper)
            for name, sub in props.items()
            if name in required or depth < _RECURSION_DEPTH
        }
    if kind == "array":
        least = int(schema.get("minItems", 0))
        count = least if depth >= _RECURSION_DEPTH else max(least, 1)
        return [example_from_schema(schema.get("items", {}), root, deeper) for _ in range(count)]
    if kind == "string":
        return _example_string(schema)
    if kind in ("integer", "number"):
        return _example_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    return None


def _example_number(schema: dict[str, Any], integer: bool) -> int | float:
    step = 1.0 if integer else 0.5
    low = schema.get("minimum", schema["exclusiveMinimum"] + step if "exclusiveMinimum" in schema else None)
    high = schema.get("maximum", schema["exclusiveMaximum"] - step if "exclusiveMaximum" in schema else None)
    value = float(low) if low is not None else (min(0.0, float(high)) if high is not None else 0.0)
    if low is not None and high is not None and not integer:
        value = (float(low) + float(high)) / 2
    multiple = schema.get("multipleOf")
    if multiple:
        value = math.ceil(value / multiple) * multiple
    return math.ceil(value) if integer else value


_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-0000-0000-000000000000",
}
_PATTERN_ATOM = re.compile(r"\\d|\\w|\\s|\[[^\]]*\]|\\.|[^\\\[(){}*+?|^$]")
_PATTERN_COUNT = re.compile(r"\{(\d+)(?:,(\d*))?\}|[*+?]")


def _from_pattern(pattern: str) -> str | None:
    """The shortest string of a simple pattern (literals, classes, \\d \\w \\s, counted repeats); None for others."""
    body, out, index = pattern.removeprefix("^").removesuffix("$"), [], 0
    while index < len(body):
        atom = _PATTERN_ATOM.match(body, index)
        if atom is None:
            return None
        index = atom.end()
        count = _PATTERN_COUNT.match(body, index)
        times = 1
        if count is not None:
            index = count.end()
            times = int(count.group(1)) if count.group(1) else (1 if count.group(0) == "+" else 0)
        token = atom.group(0)
        char = {"\\d": "0", "\\w": "a", "\\s": " "}.get(token)
        if char is None and token.startswith("["):
            inner = token[1:-1].removeprefix("^")
            char = inner[0] if inner and not token.startswith("[^") else "a"
            if inner.startswith("\\d"):
                char = "0"
        if char is None:
            char = token[-1]
        out.append(char * times)
    candidate = "".join(out)
    return candidate if re.search(pattern, candidate) else None  # pydantic's patterns match anywhere, like search


def _example_string(schema: dict[str, Any]) -> str:
    text = _FORMATS.get(schema.get("format", ""), "string")
    if "pattern" in schema:
        text = _from_pattern(schema["pattern"]) or text
    minimum = int(schema.get("minLength", 0))
    if len(text) < minimum:
        text = text + "x" * (minimum - len(text))
    return text[: schema["maxLength"]] if "maxLength" in schema else text


_WORDS = re.compile(r"\S+\s*|\s+")


class MockLLM(LLM):
    """A deterministic, offline LLM for tests.

    Args:
        responses: replies to give in order (cycling); none means echo the last user message / the prompt.
        max_tokens: when set, replies are cut to this many words.
        is_chat_model: what ``metadata`` reports (changes how ``predict`` calls it).
        is_function_calling_model: whether tools are answered with native tool calls.
    """

    responses: list[str] = Field(default_factory=list)
    max_tokens: int | None = None
    is_chat_model: bool = True
    is_function_calling_model: bool = True
    context_window: int = 4096

    _cycle: Iterator[str] | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    #: Every request the mock received: ``(messages or prompt, kwargs)``; handy for assertions.
    requests: deque[tuple[Any, dict[str, Any]]] = Field(
        default_factory=lambda: deque(maxlen=1000), exclude=True, description="The latest 1,000 requests received."
    )

    @classmethod
    def class_name(cls) -> str:
        return "MockLLM"

    def _provider_name(self) -> str:
        return "mock"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or 256,
            is_chat_model=self.is_chat_model,
            is_function_calling_model=self.is_function_calling_model,
            model_name="mock",
        )

    def _capabilities(self) -> Capabilities:
        return Capabilities(
            chat=True,
            completion=True,
            structured_modes=frozenset({PydanticProgramMode.JSON_SCHEMA, PydanticProgramMode.FUNCTION}),
            tool_calling=self.is_function_calling_model,
        )

    def _next_text(self, fallback: str) -> str:
        if not self.responses:
            text = fallback
        else:
            with self._lock:
                if self._cycle is None:
                    self._cycle = itertools.cycle(self.responses)
                text = next(self._cycle)
        if self.max_tokens is not None:
            text = "".join(_WORDS.findall(text)[: self.max_tokens]).rstrip()
        return text

    def _answer(self, last_text: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        tools = kwargs.get("tools")
        choice = kwargs.get("tool_choice")
        if tools and choice != "none":
            tool = next((t for t in tools if t.name == choice), tools[0])
            arguments = example_from_schema(tool.get_parameters_dict())
            call = {
                "id": "call_0",
                "type": "function",
                "function": {"name": tool.name, "arguments": json.dumps(arguments)},
            }
            return "", {"tool_calls": [call]}
        if kwargs.get("json_schema"):
            return json.dumps(example_from_schema(kwargs["json_schema"]["schema"])), {}
        return self._next_text(last_text), {}

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.requests.append((list(messages), kwargs))
        last = next((m.content or "" for m in reversed(messages) if m.role is MessageRole.USER), "")
        text, extra = self._answer(last, kwargs)
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=text, additional_kwargs=extra),
            usage=Usage(
                prompt_tokens=sum(len((m.content or "").split()) for m in messages), completion_tokens=len(text.split())
            ),
        )

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        self.requests.append((prompt, kwargs))
        text, extra = self._answer(prompt, kwargs)
        return CompletionResponse(
            text=text,
            additional_kwargs=extra,
            usage=Usage(prompt_tokens=len(prompt.split()), completion_tokens=len(text.split())),
        )

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[ChatResponse]:
        full = self._chat(messages, **kwargs)
        text, so_far = full.message.content or "", ""
        pieces = _WORDS.findall(text) or [""]
        for index, piece in enumerate(pieces):
            so_far += piece
            last = index == len(pieces) - 1
            message = ChatMessage(
                role=MessageRole.ASSISTANT, content=so_far, additional_kwargs=full.message.additional_kwargs
            )
            yield ChatResponse(message=message, delta=piece, usage=full.usage if last else None)

    def _stream_complete(self, prompt: str, **kwargs: Any) -> Iterator[CompletionResponse]:
        full = self._complete(prompt, **kwargs)
        so_far = ""
        pieces = _WORDS.findall(full.text) or [""]
        for index, piece in enumerate(pieces):
            so_far += piece
            yield CompletionResponse(text=so_far, delta=piece, usage=full.usage if index == len(pieces) - 1 else None)
