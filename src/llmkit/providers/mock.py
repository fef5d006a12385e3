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
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import Field, PrivateAttr

from llmkit.capabilities import Capabilities
from llmkit.llm import LLM
from llmkit.structured import PydanticProgramMode
from llmkit.types import ChatMessage, ChatResponse, CompletionResponse, LLMMetadata, MessageRole, Usage


def example_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A value valid for a JSON schema: defaults and enum members first, else the simplest value of the type."""
    root = root if root is not None else schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return example_from_schema(root.get("$defs", {}).get(name, {}), root)
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return example_from_schema(options[0], root)
    if "allOf" in schema:
        return example_from_schema(schema["allOf"][0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_from_schema(sub, root) for name, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        return [example_from_schema(schema.get("items", {}), root) for _ in range(count)]
    if kind == "string":
        return _example_string(schema)
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
    if kind == "number":
        return float(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
    if kind == "boolean":
        return True
    return None


def _example_string(schema: dict[str, Any]) -> str:
    formats = {
        "date": "2024-01-01",
        "date-time": "2024-01-01T00:00:00Z",
        "email": "user@example.com",
        "uri": "https://example.com",
        "uuid": "00000000-0000-0000-0000-000000000000",
    }
    text = formats.get(schema.get("format", ""), "string")
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
    requests: list[tuple[Any, dict[str, Any]]] = Field(default_factory=list, exclude=True)

    @classmethod
    def class_name(cls) -> str:
        return "MockLLM"

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
