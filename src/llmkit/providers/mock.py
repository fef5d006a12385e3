"""ScriptedLLM: a deterministic LLM for your own tests.

It answers with scripted replies (in order, then cycling) or echoes the last user message; it streams word by word;
asked for structured output or a tool call, it produces a schema-valid instance or valid arguments generated from the
JSON schema.

Example:
    >>> from llmkit import ScriptedLLM
    >>> llm = ScriptedLLM(responses=["one", "two"])
    >>> [llm.complete("x").text for _ in range(3)]
    ['one', 'two', 'one']
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import Field, PrivateAttr

from llmkit.capabilities import Capabilities
from llmkit.custom import CustomLLM, llm_completion_callback
from llmkit.errors import ConfigurationError
from llmkit.llm import LLM, NO_PROMPT, CompletionResponseGen
from llmkit.structured import PydanticProgramMode
from llmkit.tools import ToolSelection, as_tool_metadata
from llmkit.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    Usage,
    _MediaBlock,
)

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
        raise ConfigurationError("ScriptedLLM cannot build a finite instance of this schema: a required field recurses")
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


class MockLLM(CustomLLM):
    """LlamaIndex's ``MockLLM``: a completion model that echoes the prompt, or answers ``max_tokens`` times
    ``"text"``. ``chat`` echoes the conversation as ``messages_to_prompt`` formats it.

    Example:
        >>> MockLLM().chat([ChatMessage(role="user", content="hi")]).message.content
        'user: hi\\nassistant: '
        >>> [r.delta for r in MockLLM(max_tokens=2).stream_complete("x")]
        ['text ', 'text']
    """

    max_tokens: int | None = None
    is_chat_model: bool = False

    @classmethod
    def class_name(cls) -> str:
        return "MockLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(num_output=self.max_tokens or -1, is_chat_model=self.is_chat_model)

    @staticmethod
    def _generate_text(length: int) -> str:
        return " ".join("text" for _ in range(length))

    @llm_completion_callback()
    def complete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The prompt itself, or ``max_tokens`` times ``"text"``."""
        return CompletionResponse(text=self._generate_text(self.max_tokens) if self.max_tokens else prompt)

    @llm_completion_callback()
    def stream_complete(self, prompt: str = NO_PROMPT, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """The prompt character by character (each chunk's ``text`` is the whole prompt, as in LlamaIndex), or
        ``max_tokens`` chunks of ``"text "``."""
        max_tokens = self.max_tokens

        def gen_prompt() -> CompletionResponseGen:
            if not prompt:
                yield CompletionResponse(text="", delta="")
                return
            for char in prompt:
                yield CompletionResponse(text=prompt, delta=char)

        def gen_response(count: int) -> CompletionResponseGen:
            for index in range(count):
                delta = "text " if index < count - 1 else "text"
                yield CompletionResponse(text=self._generate_text(index), delta=delta)

        return gen_response(max_tokens) if max_tokens else gen_prompt()


class ScriptedLLM(LLM):
    """A deterministic, offline LLM for tests: scripted replies, schema-valid structured output, valid tool calls.

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
        return "ScriptedLLM"

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
            tools = [as_tool_metadata(t) for t in tools]
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


def _blocks_text(blocks: Sequence[Any]) -> str:
    """The last message's text as LlamaIndex's function-calling mock echoes it (media as ``<kind>base64</kind>``)."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif isinstance(block, ThinkingBlock):
            parts.append(block.content or "")
        elif isinstance(block, _MediaBlock):
            data = getattr(block, block._data_field)
            try:
                text = base64.b64decode(data).decode() if isinstance(data, bytes) else ""
            except (ValueError, UnicodeDecodeError):
                text = ""
            parts.append(f"<{block.block_type}>{text}</{block.block_type}>")  # type: ignore[attr-defined]
    return "".join(parts)


def _tool_calling_message(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    """Call every tool given, with the defaults of its optional arguments (LlamaIndex's mock does the same)."""
    if any(m.role is MessageRole.TOOL for m in messages):
        return ChatMessage(role=MessageRole.ASSISTANT, content="Tool calls complete.")
    tools = kwargs.get("tools") or []
    if not tools:
        return ChatMessage(role=MessageRole.ASSISTANT, content="No tools available.")
    blocks: list[Any] = []
    for tool in tools:
        meta = as_tool_metadata(tool)
        arguments: dict[str, Any] = {}
        if meta.fn_schema is not None:
            for name, info in meta.fn_schema.model_fields.items():
                if not info.is_required():
                    arguments[name] = info.get_default(call_default_factory=True)
        blocks.append(ToolCallBlock(tool_call_id=f"mock-tool-call-{uuid.uuid4().hex}", tool_name=meta.name,
                                    tool_kwargs=arguments))  # fmt: skip
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)


class MockFunctionCallingLLM(LLM):
    """LlamaIndex's ``MockFunctionCallingLLM``: a function-calling chat model whose answers come from
    ``response_generator(messages, **kwargs) -> ChatMessage``. By default it calls every tool it is given (optional
    arguments at their defaults) and otherwise echoes the last message's text (``"<empty>"`` for none).

    Example:
        >>> from llmkit import FunctionTool
        >>> def ping(host: str = "localhost") -> str:
        ...     return f"pong from {host}"
        >>> MockFunctionCallingLLM().predict_and_call([FunctionTool.from_defaults(ping)], "go").response
        'pong from localhost'
    """

    is_chat_model: bool = False
    response_generator: Callable[..., ChatMessage] | None = Field(default=None, exclude=True)

    @classmethod
    def class_name(cls) -> str:
        return "MockFunctionCallingLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_function_calling_model=True, is_chat_model=self.is_chat_model)

    def _capabilities(self) -> Capabilities:
        return Capabilities(chat=True, completion=True, tool_calling=True)

    # Both families are its own whatever is_chat_model says: chat answers from the generator, complete echoes.
    def _chat_via_completion(self) -> bool:
        return False

    def _completion_via_chat(self) -> bool:
        return False

    def _default_message(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        if kwargs.get("tools") or any(m.role is MessageRole.TOOL for m in messages):
            return _tool_calling_message(messages, **kwargs)
        content = _blocks_text(messages[-1].blocks) if messages else ""
        return ChatMessage(role=MessageRole.ASSISTANT, content=content or "<empty>")

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        generate = self.response_generator or self._default_message
        message = generate(messages, **kwargs)
        content = message.content or ""
        return ChatResponse(message=message, delta=content, raw={"content": content})

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=prompt)

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: Sequence[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        from llmkit.calling import conversation

        return {"messages": conversation(user_msg, chat_history), "tools": list(tools)}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = False, **kwargs: Any
    ) -> list[ToolSelection]:
        """The calls of a response; none is never an error here (LlamaIndex's mock ignores the flag too)."""
        return super().get_tool_calls_from_response(response, error_on_no_tool_call=False)

    def _validate_chat_with_tools_response(
        self, response: ChatResponse, tools: Sequence[Any], allow_parallel_tool_calls: bool = False, **kwargs: Any
    ) -> ChatResponse:
        return response  # every call the generator made, as LlamaIndex's mock keeps them
