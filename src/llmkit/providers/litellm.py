"""LiteLLM's 100+ providers behind llmkit's interface (extra ``litellm``).

``litellm`` is imported on the first call, never by ``import llmkit`` or by constructing the LLM, and it is told to
use its bundled model-cost map instead of fetching one over the network. Answers are litellm's OpenAI-shaped
objects, read by the same parsers as :mod:`llmkit.providers.openai`, so tool calls (streamed too), usage and
reasoning look exactly as they do everywhere else.

Retries happen once, here: litellm's own retries (``num_retries``) and those of the OpenAI client underneath
(``max_retries``) are both turned off, so ``max_retries=0`` means one attempt — not the three a stacked wrapper makes.

Example:
    >>> from llmkit.providers.litellm import LiteLLM
    >>> llm = LiteLLM(model="openai/smollm2", api_base="http://127.0.0.1:8000/v1", api_key="none", max_retries=0)
    >>> llm.class_name()
    'litellm_llm'
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from types import ModuleType
from typing import Any, ClassVar

import httpx
from pydantic import Field, PrivateAttr, SecretStr, model_validator

from llmkit.capabilities import Capabilities
from llmkit.errors import (
    APIConnectionError,
    APITimeoutError,
    ContentFilterError,
    LLMError,
    StreamError,
    missing_extra,
)
from llmkit.llm import LLM
from llmkit.structured import PydanticProgramMode
from llmkit.transport import RetryPolicy
from llmkit.transport.errors import error_for_status
from llmkit.transport.retry import Retrying
from llmkit.types import ChatMessage, ChatResponse, LLMMetadata
from llmkit.wire.openai import ChatStreamParser, parse_chat, response_format, to_openai_message, tools_body

DEFAULT_TEMPERATURE = 0.1
DEFAULT_CONTEXT_WINDOW = 3900
_import_lock = threading.Lock()


def import_litellm() -> ModuleType:
    """``litellm``, configured for llmkit: no remote cost map, no debug banners, no telemetry."""
    with _import_lock:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            import litellm
        except ImportError as exc:
            raise missing_extra("litellm", "litellm") from exc
        litellm.suppress_debug_info = True
        litellm.telemetry = False
        return litellm


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def map_error(exc: Exception) -> LLMError:
    """litellm's exception as llmkit's: by the HTTP status it carries, or as a connection error or timeout."""
    if isinstance(exc, LLMError):
        return exc
    chain = list(_cause_chain(exc))
    names = {type(e).__name__ for e in chain}
    message = f"litellm: {exc}"
    if any(isinstance(e, httpx.TimeoutException) for e in chain) or names & {"Timeout", "APITimeoutError"}:
        return APITimeoutError(message, provider="litellm")
    if any(isinstance(e, httpx.TransportError) for e in chain) or "APIConnectionError" in names:
        return APIConnectionError(message, provider="litellm")
    status = getattr(exc, "status_code", None)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int):
        return LLMError(message)
    headers = getattr(exc, "litellm_response_headers", None)
    body = getattr(exc, "body", None)
    if type(exc).__name__ == "ContentPolicyViolationError":
        return ContentFilterError(message, status_code=status, provider="litellm", body=body)
    return error_for_status(
        status, body, headers if isinstance(headers, httpx.Headers) else httpx.Headers(), "litellm", message=message
    )


class LiteLLM(LLM):
    """Any model litellm knows, as ``"PROVIDER/MODEL"`` (``"openai/gpt-4o-mini"``, ``"anthropic/claude-..."``).

    Args:
        model: the LiteLLM model to use.
        temperature: the temperature to use during generation (default 0.1).
        max_tokens: the maximum number of tokens to generate.
        additional_kwargs: extra keyword arguments for every ``litellm.completion`` call.
        max_retries: retries of 408/409/429/5xx and connection errors, with backoff honouring ``Retry-After``.
        api_key / api_base / api_version / timeout: passed to litellm (the key is kept secret).
        context_window / is_function_calling_model: override what litellm's model info says.

    Example:
        >>> llm = LiteLLM(model="openai/gpt-4o-mini", max_tokens=64)  # litellm itself is imported on first use
        >>> llm.model
        'openai/gpt-4o-mini'
    """

    _derived_from_fields: ClassVar[bool] = True

    model: str = Field(description="The LiteLLM model to use.")
    temperature: float = Field(default=DEFAULT_TEMPERATURE, description="The temperature to use during generation.")
    max_tokens: int | None = Field(default=None, description="The maximum number of tokens to generate.")
    additional_kwargs: dict[str, Any] = Field(default_factory=dict, description="Additional kwargs for the LLM API.")

    @model_validator(mode="before")
    @classmethod
    def _unknown_keywords_go_to_litellm(cls, data: Any) -> Any:
        """As in LlamaIndex: keywords LiteLLM has no field for (``custom_llm_provider=...``) go to every
        ``litellm.completion`` call, not away."""
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields) | {"callback_manager"}
        extra = {key: data[key] for key in data if key not in known}
        if not extra:
            return data
        kept = {key: value for key, value in data.items() if key in known}
        return {**kept, "additional_kwargs": {**extra, **(data.get("additional_kwargs") or {})}}
    max_retries: int = Field(default=2, ge=0, description="The maximum number of API retries.")
    api_key: SecretStr | None = Field(default=None, description="The provider's API key.")
    api_base: str | None = Field(default=None, description="The provider's base URL.")
    api_version: str | None = Field(default=None, description="The API version (Azure).")
    timeout: float | None = Field(default=60.0, gt=0, description="Request timeout in seconds.")
    context_window: int | None = Field(default=None, description="Override litellm's context window for the model.")
    is_function_calling_model: bool | None = Field(
        default=None, description="Override litellm's answer to whether the model takes tools."
    )

    _model_info: dict[str, Any] | None = PrivateAttr(default=None)
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy, exclude=True, description="Backoff between retries.")

    @classmethod
    def class_name(cls) -> str:
        return "litellm_llm"

    def _provider_name(self) -> str:
        """LiteLLM's provider prefix (``anthropic/claude-...``), else ``litellm`` (priced by the model's name)."""
        prefix, slash, _ = self.model.partition("/")
        return prefix if slash else "litellm"

    # -- what litellm knows about the model ------------------------------------------------------------------------

    def model_info(self) -> dict[str, Any]:
        """litellm's model info (empty when litellm does not know the model); looked up once."""
        if self._model_info is None:
            litellm = import_litellm()
            try:
                self._model_info = dict(litellm.get_model_info(self.model))
            except Exception:  # litellm raises a bare Exception for models missing from its map
                self._model_info = {}
        return self._model_info

    @property
    def metadata(self) -> LLMMetadata:
        info = self.model_info()
        calls = self.is_function_calling_model
        if calls is None:
            calls = bool(info.get("supports_function_calling"))
        return LLMMetadata(
            context_window=self.context_window or info.get("max_input_tokens") or DEFAULT_CONTEXT_WINDOW,
            num_output=self.max_tokens or info.get("max_output_tokens") or 256,
            is_chat_model=True,
            is_function_calling_model=calls,
            model_name=self.model,
        )

    def _capabilities(self) -> Capabilities:
        info = self.model_info()
        calls = self.metadata.is_function_calling_model
        modes = {PydanticProgramMode.FUNCTION} if calls else set()
        if info.get("supports_response_schema"):
            modes.add(PydanticProgramMode.JSON_SCHEMA)
        return Capabilities(
            chat=True,
            structured_modes=frozenset(modes),
            tool_calling=calls,
            vision=bool(info.get("supports_vision")),
        )

    # -- the call --------------------------------------------------------------------------------------------------

    def _call_kwargs(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
        call: dict[str, Any] = {
            "model": self.model,
            "messages": [to_openai_message(m) for m in messages],
            "temperature": self.temperature,
            "timeout": self.timeout,
            "num_retries": 0,  # retries are ours: see the module docstring
            "max_retries": 0,
        }
        if self.max_tokens is not None:
            call["max_tokens"] = self.max_tokens
        if self.api_key is not None:
            call["api_key"] = self.api_key.get_secret_value()
        if self.api_base:
            call["api_base"] = self.api_base
        if self.api_version:
            call["api_version"] = self.api_version
        if stream:
            call["stream"] = True
            call["stream_options"] = {"include_usage": True}
        call.update(self.additional_kwargs)
        call.update(tools_body(kwargs.pop("tools", None), kwargs.pop("tool_choice", None)))
        spec = kwargs.pop("json_schema", None)
        if spec is not None:
            call["response_format"] = response_format(spec)  # OpenAI's strict rules, which litellm passes on
        call.update(kwargs)
        return call

    def _retries(self, kwargs: dict[str, Any]) -> int:
        value = kwargs.pop("max_retries", None)
        return self.max_retries if value is None else int(value)

    def _retrying(self, retries: int) -> Retrying:
        return Retrying(self.retry_policy, retries, lambda exc: (map_error(exc), True), self.callback_manager)

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        litellm = import_litellm()
        retries = self._retries(kwargs)
        call = self._call_kwargs(messages, kwargs, stream=False)
        response = self._retrying(retries).call(lambda: litellm.completion(**call))
        return parse_chat(response.model_dump(), "litellm")

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        litellm = import_litellm()
        retries = self._retries(kwargs)
        call = self._call_kwargs(messages, kwargs, stream=False)
        response = await self._retrying(retries).acall(lambda: litellm.acompletion(**call))
        return parse_chat(response.model_dump(), "litellm")

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Iterator[ChatResponse]:
        litellm = import_litellm()
        retries = self._retries(kwargs)
        call = self._call_kwargs(messages, kwargs, stream=True)
        parser = ChatStreamParser("litellm")
        # The request is sent (and retried) before the first chunk; once text has arrived, a failure is final.
        chunks = self._retrying(retries).call(lambda: litellm.completion(**call))
        try:
            for chunk in chunks:
                response = parser.feed_chunk(chunk.model_dump())
                if response is not None:
                    yield response
        except Exception as exc:
            raise StreamError(f"litellm: the stream broke: {map_error(exc)}", received=parser.text) from exc
        parser.ensure_complete()

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[ChatResponse]:
        litellm = import_litellm()
        retries = self._retries(kwargs)
        call = self._call_kwargs(messages, kwargs, stream=True)
        parser = ChatStreamParser("litellm")
        chunks = await self._retrying(retries).acall(lambda: litellm.acompletion(**call))
        try:
            async for chunk in chunks:
                response = parser.feed_chunk(chunk.model_dump())
                if response is not None:
                    yield response
        except Exception as exc:
            raise StreamError(f"litellm: the stream broke: {map_error(exc)}", received=parser.text) from exc
        parser.ensure_complete()


def from_spec(model: str, **kwargs: Any) -> LiteLLM:
    """``create("litellm/PROVIDER/MODEL")``."""
    return LiteLLM(model=model, **kwargs)
