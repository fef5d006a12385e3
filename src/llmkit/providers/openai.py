"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp's server, Ollama, Together, Groq, ...

Servers differ: llama.cpp's server takes a JSON schema as ``{"type": "json_object", "schema": ...}`` and reports no
usage in streams; OpenAI and vLLM take ``response_format`` ``json_schema``. What a server accepts lives in a
:class:`ServerProfile`, chosen by name (``server="llama.cpp"``) or given whole. The format itself, both ways, is
:mod:`llmkit.wire.openai`; this module only builds requests and picks parsers. Where a profile guesses wrong,
structured output falls back to the next mode and remembers it for the instance.

Example:
    >>> from llmkit.providers.openai import OpenAILike
    >>> llm = OpenAILike(model="smollm2", api_base="http://127.0.0.1:8000/v1", server="llama.cpp")
    >>> llm.metadata.model_name
    'smollm2'
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from llmkit.capabilities import Capabilities
from llmkit.errors import ConfigurationError
from llmkit.providers.base import ChatOverHTTP, CompletionOverHTTP
from llmkit.structured import PydanticProgramMode
from llmkit.transport import Request
from llmkit.transport.client import check_url
from llmkit.types import (
    AudioBlock,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    DocumentBlock,
    LLMMetadata,
    _MediaBlock,
)
from llmkit.usage.cost import server_provider
from llmkit.wire.openai import (
    ChatStreamParser,
    CompletionStreamParser,
    parse_chat,
    parse_completion,
    response_format,
    to_openai_message,
    tools_body,
)
from llmkit.wire.stream import StreamParser


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

#: How an OpenAILike works out its provider's name (see LLM._derived_value).
_WORK_OUT_PROVIDER_NAME: Callable[[Any], str] = operator.methodcaller("_work_out_provider_name")


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

    _derived_from_fields: ClassVar[bool] = True

    model: str = Field(description="The model to use.")
    api_base: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices("api_base", "base_url"),  # base_url: the OpenAI SDK's name for it
        description="The base URL of the API.",
    )
    api_key: SecretStr | None = Field(default=None, description="The API key.")
    is_chat_model: bool = Field(default=True, description="Whether the model takes chat messages.")
    is_function_calling_model: bool = Field(default=False, description="Whether the model supports tools.")
    context_window: int = Field(default=3900, description="The model's context window in tokens.")
    max_tokens: int | None = Field(default=None, description="The most tokens to generate.")
    temperature: float | None = Field(default=None, ge=0, description="Sampling temperature (server default if unset).")
    additional_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra keys for every request.")
    default_headers: dict[str, str] = Field(default_factory=dict, description="Extra headers for every request.")
    server: str | ServerProfile = Field(default="generic", description="The server profile.")

    fetched_media: ClassVar[tuple[type[_MediaBlock], ...]] = (AudioBlock, DocumentBlock)  # images go as URLs

    @field_validator("api_base")
    @classmethod
    def _valid_url(cls, url: str) -> str:
        return check_url(url, cls.class_name())

    @model_validator(mode="after")
    def _known_profile(self) -> OpenAILike:
        if isinstance(self.server, str) and self.server not in PROFILES:
            raise ConfigurationError(f"Unknown server profile {self.server!r}; known: {', '.join(PROFILES)}")
        return self

    @classmethod
    def class_name(cls) -> str:
        return "OpenAILike"

    def _provider_name(self) -> str:
        """The server kind the profile names; for a generic server, the hosted service its URL names (priced from its
        rates) or ``openai_compatible`` for one on this machine or a private network (unpriced unless told)."""
        return self._derived_value("provider", _WORK_OUT_PROVIDER_NAME)

    def _work_out_provider_name(self) -> str:
        name = self.profile.name
        return server_provider(self.api_base) if name == "generic" else name

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
        return response_format(spec, self.profile.json_schema)

    def _chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stream: bool) -> Request:
        body = self._base_body(kwargs, stream)
        body["messages"] = [to_openai_message(m) for m in messages]
        if kwargs:
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
        return parse_completion(body, self.class_name())

    def _chat_stream_parser(self) -> StreamParser[ChatResponse]:
        return ChatStreamParser(self.class_name())

    def _completion_stream_parser(self) -> StreamParser[CompletionResponse]:
        return CompletionStreamParser(self.class_name())

    # -- extras -------------------------------------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """The model ids the server lists at ``/models``."""
        body = self.transport.request_json(Request("GET", "/models"))
        return [entry["id"] for entry in body.get("data", [])]


class OpenAI(OpenAILike):
    """The OpenAI API. ``api_key`` defaults to ``OPENAI_API_KEY``, ``api_base`` to ``OPENAI_BASE_URL``.

    Pickles and deep copies keep the settings, not the connection pools. A pickle never holds the key: one read from
    ``OPENAI_API_KEY`` is read from it again when the pickle is loaded; one given in code makes pickling fail with a
    :class:`~llmkit.errors.SerializationError` (see :meth:`~llmkit.llm.BaseLLM.__getstate__`).

    Example:
        >>> llm = OpenAI(model="gpt-4o-mini", api_key="sk-test")
        >>> llm.metadata.is_function_calling_model
        True
    """

    api_base: str = Field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1")
    is_function_calling_model: bool = True
    _secret_env: ClassVar[dict[str, tuple[str, ...]]] = {"api_key": ("OPENAI_API_KEY",)}
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

    def _provider_name(self) -> str:
        return "openai"


def openai_like_from_spec(model: str, **kwargs: Any) -> OpenAILike:
    """``create("openai-like/MODEL", api_base=...)``."""
    return OpenAILike(model=model, **kwargs)


def openai_from_spec(model: str, **kwargs: Any) -> OpenAI:
    """``create("openai/MODEL")``."""
    return OpenAI(model=model or "gpt-4o-mini", **kwargs)
