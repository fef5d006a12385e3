"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp's server, Ollama, Together, Groq, ...

Servers differ (see ``shared/protocols/openai-compatible-servers.md``), so what a server accepts lives in a
:class:`ServerProfile` — how it takes a JSON schema, whether it reports usage in streams — chosen by name
(``server="llama.cpp"``) or given whole. Where a profile guesses wrong, structured output falls back to the next mode
and remembers it for the instance.

Example:
    >>> from llmkit.providers.openai import OpenAILike
    >>> llm = OpenAILike(model="smollm2", api_base="http://127.0.0.1:8000/v1", server="llama.cpp")
    >>> llm.metadata.model_name
    'smollm2'
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from llmkit.capabilities import Capabilities
from llmkit.errors import ConfigurationError, ResponseParseError, StreamError
from llmkit.providers.base import ChatOverHTTP, CompletionOverHTTP, StreamParser
from llmkit.structured import PydanticProgramMode
from llmkit.transport import Request, ServerSentEvent
from llmkit.types import (
    AudioBlock,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    DocumentBlock,
    ImageBlock,
    LLMMetadata,
    LogProb,
    MessageRole,
    TextBlock,
    Usage,
    chat_chunk,
    completion_chunk,
    text_message,
)


@dataclass(frozen=True)
class ServerProfile:
    """What an OpenAI-compatible server accepts.

    Attributes:
        json_schema: how a JSON schema is sent: ``"openai"`` (``response_format`` ``json_schema``, strict),
            ``"json_object"`` (``{"type": "json_object", "schema": ...}``, llama.cpp's extension) or ``"none"``.
        stream_usage: whether to ask for usage in streams (``stream_options.include_usage``).
    """

    name: str = "generic"
    json_schema: Literal["openai", "json_object", "none"] = "openai"
    stream_usage: bool = True


PROFILES: dict[str, ServerProfile] = {
    "generic": ServerProfile(),
    "openai": ServerProfile(name="openai"),
    "vllm": ServerProfile(name="vllm"),
    "llama.cpp": ServerProfile(name="llama.cpp", json_schema="json_object", stream_usage=False),
    "ollama": ServerProfile(name="ollama"),
}

_ROLE_MAP = {MessageRole.CHATBOT: "assistant", MessageRole.MODEL: "assistant"}


def _audio_format(block: AudioBlock) -> str:
    subtype = block.mimetype.split("/")[-1]
    return {"mpeg": "mp3", "x-wav": "wav", "wave": "wav"}.get(subtype, subtype)


def content_part(block: Any) -> dict[str, Any] | None:
    """One content block as an OpenAI content part (None for blocks the API has no part for)."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        url = block.url if block.url and block.image is None and block.path is None else block.data_url()
        image: dict[str, Any] = {"url": url}
        if block.detail:
            image["detail"] = block.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(block, AudioBlock):
        data = block.resolve(as_base64=True).decode()
        return {"type": "input_audio", "input_audio": {"data": data, "format": _audio_format(block)}}
    if isinstance(block, DocumentBlock):
        return {"type": "file", "file": {"filename": block.title or "document", "file_data": block.data_url()}}
    return None


def to_openai_message(message: ChatMessage) -> dict[str, Any]:
    """One message in OpenAI's chat format."""
    role = _ROLE_MAP.get(message.role, message.role.value)
    blocks = message.blocks
    if all(type(b) is TextBlock for b in blocks):
        content: Any = "\n".join(b.text for b in blocks)  # type: ignore[union-attr]
    else:
        content = [part for part in map(content_part, blocks) if part is not None]
    out: dict[str, Any] = {"role": role, "content": content}
    extra = message.additional_kwargs
    if extra:
        if "tool_calls" in extra:
            out["tool_calls"] = extra["tool_calls"]
            if not content:
                out["content"] = None
        for key in ("tool_call_id", "name"):
            if key in extra:
                out[key] = extra[key]
    return out


def _tool_spec(tool: Any) -> dict[str, Any]:
    if callable(tool) and not hasattr(tool, "metadata") and not hasattr(tool, "to_openai_tool"):
        from llmkit.tools import FunctionTool  # a plain function is a tool too

        tool = FunctionTool.from_defaults(tool)
    metadata = getattr(tool, "metadata", tool)
    spec: dict[str, Any] = metadata.to_openai_tool()
    return spec


def tools_body(tools: Sequence[Any] | None, tool_choice: Any = None) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` in OpenAI's format (a tool name forces that tool)."""
    if not tools:
        return {}
    body: dict[str, Any] = {"tools": [_tool_spec(t) for t in tools]}
    if tool_choice is not None:
        body["tool_choice"] = (
            tool_choice
            if tool_choice in ("auto", "none", "required") or isinstance(tool_choice, dict)
            else {"type": "function", "function": {"name": tool_choice}}
        )
    return body


def parse_logprobs(choice: dict[str, Any]) -> list[list[LogProb]] | None:
    data = choice.get("logprobs")
    if not data:
        return None
    if "content" in data:  # chat format
        return [
            [LogProb(token=t["token"], logprob=t["logprob"], bytes=t.get("bytes") or [])]
            + [
                LogProb(token=a["token"], logprob=a["logprob"], bytes=a.get("bytes") or [])
                for a in t.get("top_logprobs") or []
                if a["token"] != t["token"]
            ]
            for t in data["content"] or []
        ]
    tokens, values = data.get("tokens") or [], data.get("token_logprobs") or []  # legacy completions format
    tops = data.get("top_logprobs") or [None] * len(tokens)
    return [
        [LogProb(token=tok, logprob=val if val is not None else 0.0)]
        + [LogProb(token=k, logprob=v) for k, v in (top or {}).items() if k != tok]
        for tok, val, top in zip(tokens, values, tops, strict=False)
    ]


def parse_usage(body: dict[str, Any]) -> Usage | None:
    usage = body.get("usage")
    if not usage:
        return None
    return Usage(
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        total_tokens=usage.get("total_tokens"),
    )


def _assistant(text: str, extra: dict[str, Any]) -> ChatMessage:
    # Built without validation: the parsed reply is already well-typed, and this is the hot path.
    return text_message(text, extra)


def _choice(body: Any, provider: str) -> dict[str, Any]:
    try:
        choice: dict[str, Any] = body["choices"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise ResponseParseError(
            f"{provider}: the reply has no choices: {str(body)[:200]}", body=body, provider=provider
        ) from exc
    return choice


def parse_chat(body: Any, provider: str) -> ChatResponse:
    """An OpenAI ``chat.completion`` body as a response (tool calls and reasoning in the message's extras)."""
    choice = _choice(body, provider)
    message = choice.get("message") or {}
    extra: dict[str, Any] = {}
    if message.get("tool_calls"):
        extra["tool_calls"] = message["tool_calls"]
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning:
        extra["reasoning"] = reasoning
    return chat_chunk(
        _assistant(message.get("content") or "", extra),
        raw=body,
        logprobs=parse_logprobs(choice),
        usage=parse_usage(body),
        additional_kwargs={"finish_reason": choice.get("finish_reason")},
    )


def _stream_json(event: ServerSentEvent, parser: StreamParser[Any]) -> dict[str, Any] | None:
    if event.data == "[DONE]":
        parser.done = True
        return None
    if not event.data:
        return None
    try:
        chunk = json.loads(event.data)
    except ValueError as exc:
        raise StreamError(f"malformed stream event (not JSON): {event.data[:200]!r}", received=parser.text) from exc
    if not isinstance(chunk, dict):
        raise StreamError(f"malformed stream event: {event.data[:200]!r}", received=parser.text)
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise StreamError(f"the server reported an error mid-stream: {message}", received=parser.text)
    return chunk


class ChatStreamParser(StreamParser[ChatResponse]):
    """Assembles OpenAI chat chunks: text, reasoning, and tool calls from their streamed fragments."""

    def __init__(self) -> None:
        super().__init__()
        self.tool_calls: list[dict[str, Any]] = []
        self.reasoning = ""

    def _merge_tool_calls(self, fragments: list[dict[str, Any]]) -> None:
        for fragment in fragments:
            index = fragment.get("index", len(self.tool_calls))
            while len(self.tool_calls) <= index:
                self.tool_calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
            call = self.tool_calls[index]
            if fragment.get("id"):
                call["id"] = fragment["id"]
            function = fragment.get("function") or {}
            name = function.get("name")
            if name and name != call["function"]["name"]:
                # Some servers (and litellm) repeat the whole name in every fragment; OpenAI sends it once.
                call["function"]["name"] += name
            if function.get("arguments"):
                call["function"]["arguments"] += function["arguments"]

    def feed(self, event: ServerSentEvent) -> ChatResponse | None:
        chunk = _stream_json(event, self)
        return None if chunk is None else self.feed_chunk(chunk)

    def feed_chunk(self, chunk: dict[str, Any]) -> ChatResponse | None:
        """One decoded chunk (``chat.completion.chunk``)."""
        usage = parse_usage(chunk)
        choices = chunk.get("choices") or []
        delta_text = ""
        logprobs = None
        if choices:
            choice = choices[0]
            delta = choice.get("delta") or {}
            delta_text = delta.get("content") or ""
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                self.reasoning += reasoning
            if delta.get("tool_calls"):
                self._merge_tool_calls(delta["tool_calls"])
            logprobs = parse_logprobs(choice)
        elif usage is None:
            return None
        self.text += delta_text
        extra: dict[str, Any] = {}
        if self.tool_calls:
            extra["tool_calls"] = [{**c, "function": dict(c["function"])} for c in self.tool_calls]
        if self.reasoning:
            extra["reasoning"] = self.reasoning
        return chat_chunk(_assistant(self.text, extra), delta=delta_text, raw=chunk, logprobs=logprobs, usage=usage)


class _CompletionStream(StreamParser[CompletionResponse]):
    def feed(self, event: ServerSentEvent) -> CompletionResponse | None:
        chunk = _stream_json(event, self)
        if chunk is None:
            return None
        choices = chunk.get("choices") or []
        usage = parse_usage(chunk)
        if not choices and usage is None:
            return None
        delta = (choices[0].get("text") or "") if choices else ""
        self.text += delta
        logprobs = parse_logprobs(choices[0]) if choices else None
        return completion_chunk(self.text, delta=delta, raw=chunk, logprobs=logprobs, usage=usage)


class OpenAILike(ChatOverHTTP, CompletionOverHTTP):
    """An OpenAI-compatible server.

    Args:
        model: the model name the server knows.
        api_base: the server's base URL, ending in ``/v1`` for most servers.
        api_key: the key, if the server wants one (sent as ``Authorization: Bearer``).
        is_chat_model: use ``/chat/completions`` (True) or the legacy ``/completions``.
        is_function_calling_model: whether the model takes ``tools``.
        context_window, max_tokens, temperature: as usual; ``additional_kwargs`` go into every request body.
        server: a profile name (``generic``, ``openai``, ``vllm``, ``llama.cpp``, ``ollama``) or a ServerProfile.

    Example:
        >>> llm = OpenAILike(model="m", api_base="http://127.0.0.1:8000/v1")
        >>> llm.close()
    """

    model: str = Field(description="The model to use.")
    api_base: str = Field(default="https://api.openai.com/v1", description="The base URL of the API.")
    api_key: SecretStr | None = Field(default=None, description="The API key.")
    is_chat_model: bool = Field(default=True, description="Whether the model takes chat messages.")
    is_function_calling_model: bool = Field(default=False, description="Whether the model supports tools.")
    context_window: int = Field(default=3900, description="The model's context window in tokens.")
    max_tokens: int | None = Field(default=None, description="The most tokens to generate.")
    temperature: float | None = Field(default=None, description="Sampling temperature (server default if unset).")
    additional_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra keys for every request.")
    default_headers: dict[str, str] = Field(default_factory=dict, description="Extra headers for every request.")
    server: str | ServerProfile = Field(default="generic", description="The server profile.")

    @model_validator(mode="after")
    def _known_profile(self) -> OpenAILike:
        if isinstance(self.server, str) and self.server not in PROFILES:
            raise ConfigurationError(f"Unknown server profile {self.server!r}; known: {', '.join(PROFILES)}")
        return self

    @classmethod
    def class_name(cls) -> str:
        return "OpenAILike"

    @property
    def profile(self) -> ServerProfile:
        """The server profile in force."""
        return self.server if isinstance(self.server, ServerProfile) else PROFILES[self.server]

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or 256,
            is_chat_model=self.is_chat_model,
            is_function_calling_model=self.is_function_calling_model,
            model_name=self.model,
        )

    def _capabilities(self) -> Capabilities:
        modes = {PydanticProgramMode.FUNCTION} if self.is_function_calling_model else set()
        if self.profile.json_schema != "none":
            modes.add(PydanticProgramMode.JSON_SCHEMA)
        return Capabilities(
            chat=True,
            completion=True,
            structured_modes=frozenset(modes),
            tool_calling=self.is_function_calling_model,
            vision=self.is_chat_model,
        )

    def _transport_settings(self) -> dict[str, Any]:
        headers = {"Accept": "application/json", **self.default_headers}
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        return {"base_url": self.api_base, "headers": headers, "provider": self.class_name()}

    def convert_chat_messages(self, messages: Sequence[ChatMessage]) -> list[Any]:
        return [to_openai_message(m) for m in messages]

    # -- request building ---------------------------------------------------------------------------------------------

    def _base_body(self, kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if stream:
            body["stream"] = True
            if self.profile.stream_usage:
                body["stream_options"] = {"include_usage": True}
        body.update(self.additional_kwargs)
        return body

    def _response_format(self, spec: dict[str, Any]) -> dict[str, Any]:
        if self.profile.json_schema == "json_object":
            return {"type": "json_object", "schema": spec["schema"]}
        return {"type": "json_schema", "json_schema": spec}

    def _chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stream: bool) -> Request:
        body = self._base_body(kwargs, stream)
        body["messages"] = [to_openai_message(m) for m in messages]
        body.update(tools_body(kwargs.pop("tools", None), kwargs.pop("tool_choice", None)))
        spec = kwargs.pop("json_schema", None)
        if spec is not None:
            body["response_format"] = self._response_format(spec)
        body.update(kwargs)
        return Request("POST", "/chat/completions", json=body)

    def _completion_request(self, prompt: str, kwargs: dict[str, Any], stream: bool) -> Request:
        body = self._base_body(kwargs, stream)
        body["prompt"] = prompt
        spec = kwargs.pop("json_schema", None)
        if spec is not None:
            body["response_format"] = self._response_format(spec)
        body.update(kwargs)
        return Request("POST", "/completions", json=body)

    # -- parsing ------------------------------------------------------------------------------------------------------

    def _parse_chat(self, body: Any) -> ChatResponse:
        return parse_chat(body, self.class_name())

    def _parse_completion(self, body: Any) -> CompletionResponse:
        choice = _choice(body, self.class_name())
        return completion_chunk(
            choice.get("text") or "",
            raw=body,
            logprobs=parse_logprobs(choice),
            usage=parse_usage(body),
            additional_kwargs={"finish_reason": choice.get("finish_reason")},
        )

    def _chat_stream_parser(self) -> StreamParser[ChatResponse]:
        return ChatStreamParser()

    def _completion_stream_parser(self) -> StreamParser[CompletionResponse]:
        return _CompletionStream()

    # -- extras -------------------------------------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """The model ids the server lists at ``/models``."""
        body = self.transport.request_json(Request("GET", "/models"))
        return [entry["id"] for entry in body.get("data", [])]


class OpenAI(OpenAILike):
    """The OpenAI API. ``api_key`` defaults to ``OPENAI_API_KEY``, ``api_base`` to ``OPENAI_BASE_URL``.

    Example:
        >>> llm = OpenAI(model="gpt-4o-mini", api_key="sk-test")
        >>> llm.metadata.is_function_calling_model
        True
    """

    api_base: str = Field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1")
    is_function_calling_model: bool = True
    context_window: int = 128_000
    server: str | ServerProfile = "openai"

    @model_validator(mode="after")
    def _key_from_env(self) -> OpenAI:
        if self.api_key is None:
            env = os.environ.get("OPENAI_API_KEY")
            if not env:
                raise ConfigurationError("OpenAI needs an API key: pass api_key=... or set OPENAI_API_KEY")
            self.api_key = SecretStr(env)
        return self

    @classmethod
    def class_name(cls) -> str:
        return "OpenAI"


def openai_like_from_spec(model: str, **kwargs: Any) -> OpenAILike:
    """``create("openai-like/MODEL", api_base=...)``."""
    return OpenAILike(model=model, **kwargs)


def openai_from_spec(model: str, **kwargs: Any) -> OpenAI:
    """``create("openai/MODEL")``."""
    return OpenAI(model=model or "gpt-4o-mini", **kwargs)
