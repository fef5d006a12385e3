"""Gradient (gradient.ai): base models by slug and fine-tuned model adapters by id.

Wire-identical to the official ``gradientai`` SDK 1.13.1: ``GET {host}/models?onlyBase=...`` to resolve a slug,
``POST {host}/models/{id}/complete`` with ``Authorization: Bearer`` and ``x-gradient-workspace-id``, and the SDK's
completion body with every one of its eight keys present (``null`` when unset). Where the SDK
is weak, llmkit does better without changing what goes on the wire: constructing an LLM does no network I/O (the
model is resolved on first use and cached), async is real async I/O, 429 and 5xx are retried with backoff, calls
have timeouts, and error bodies become typed errors.

Gradient has no streaming: ``stream_complete``/``stream_chat`` (and their async forms, on real async I/O) yield the
whole answer as one chunk, as :class:`~llmkit.llm.LLM` does for every provider without a stream, so
provider-agnostic code runs unchanged.

Example:
    >>> from llmkit.providers.gradient import GradientBaseModelLLM
    >>> llm = GradientBaseModelLLM(
    ...     base_model_slug="llama2-7b-chat", access_token="tok", workspace_id="ws", max_tokens=64
    ... )
    >>> llm.metadata.num_output
    64
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, PrivateAttr, SecretStr

from llmkit.capabilities import Capabilities
from llmkit.errors import (
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    LLMError,
    NotFoundError,
    ResponseParseError,
)
from llmkit.providers.base import HTTPLLM, call_options
from llmkit.transport import Request
from llmkit.transport.errors import ErrorHook, error_for_status
from llmkit.types import CompletionResponse, LLMMetadata

DEFAULT_HOST = "https://api.gradient.ai/api"
SDK_USER_AGENT = f"gradientai-python-sdk 1.13.1 ({sys.platform})"
CONTEXT_WINDOW = 1024  # what the reference integration reports; the API does not say
DEFAULT_NUM_OUTPUT = 20

#: Per-call keywords and the completion-body key each one fills.
CALL_KEYWORDS = {
    "temperature": "temperature",
    "top_k": "topK",
    "top_p": "topP",
    "auto_template": "autoTemplate",
    "guidance": "guidance",
    "rag": "rag",
    "max_tokens": "maxGeneratedTokenCount",
}
_NOT_FOUND_TYPES = {"unknownBaseModel", "unknownModelAdapter", "unknownRagCollection"}
_BAD_REQUEST_TYPES = {"bodyParsingError", "queryOrPathParsingError", "unprocessableContent"}


def _env(name: str) -> str | None:
    return os.environ.get(name) or None  # an empty variable counts as unset, as in the SDK


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_max_tokens(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 512:
        raise ConfigurationError(f"Gradient's max_tokens must be an integer with 0 < max_tokens < 512, not {value!r}")
    return value


def _guidance(value: Any) -> dict[str, Any]:
    """Choice guidance: a list of 1 to 10 strings of 1 to 32 characters, or the API's own object."""
    choices = value.get("value") if isinstance(value, dict) else value
    if (
        not isinstance(choices, list | tuple)
        or not 1 <= len(choices) <= 10
        or not all(isinstance(c, str) and 1 <= len(c) <= 32 for c in choices)
    ):
        raise ConfigurationError(
            f"guidance must be a list of 1 to 10 choices, each a string of 1 to 32 characters, not {value!r}"
        )
    return {"type": "choice", "value": list(choices)}


def _rag(value: Any) -> dict[str, Any]:
    """A RAG collection: its id, or ``{"collection_id": id}`` as the SDK takes it."""
    collection = value.get("collection_id", value.get("collectionId")) if isinstance(value, dict) else value
    if not isinstance(collection, str) or not collection:
        raise ConfigurationError(f"rag must be a collection id or {{'collection_id': ID}}, not {value!r}")
    return {"collectionId": collection}


def completion_body(prompt: str, max_tokens: int | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The body of ``POST /models/{id}/complete``, key for key what the SDK sends (unset keys are ``null``).

    Raises :class:`ConfigurationError` for an unknown keyword or a value the API would reject, before anything is sent.
    """
    unknown = sorted(set(kwargs) - set(CALL_KEYWORDS))
    if unknown:
        raise ConfigurationError(
            f"Gradient does not take {', '.join(map(repr, unknown))}; "
            f"the supported keywords are {', '.join(sorted(CALL_KEYWORDS))}"
        )
    if not prompt:
        raise ConfigurationError("Gradient needs a non-empty prompt")
    if "max_tokens" in kwargs and kwargs["max_tokens"] is not None:
        max_tokens = _check_max_tokens(kwargs["max_tokens"])
    body: dict[str, Any] = {
        "query": prompt,
        "autoTemplate": None,
        "guidance": None,
        "maxGeneratedTokenCount": max_tokens,
        "rag": None,
        "temperature": None,
        "topK": None,
        "topP": None,
    }
    for name in ("temperature", "top_p"):
        value = kwargs.get(name)
        if value is not None and not _is_number(value):
            raise ConfigurationError(f"{name} must be a number, not {value!r}")
        body[CALL_KEYWORDS[name]] = value
    top_k = kwargs.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)):
        raise ConfigurationError(f"top_k must be an integer, not {top_k!r}")
    body["topK"] = top_k
    auto_template = kwargs.get("auto_template")
    if auto_template is not None and not isinstance(auto_template, bool):
        raise ConfigurationError(f"auto_template must be True or False, not {auto_template!r}")
    body["autoTemplate"] = auto_template
    if kwargs.get("guidance") is not None:
        body["guidance"] = _guidance(kwargs["guidance"])
    if kwargs.get("rag") is not None:
        body["rag"] = _rag(kwargs["rag"])
    return body


def parse_completion(body: Any) -> CompletionResponse:
    """``{"finishReason", "generatedOutput"}`` -> a response (Gradient reports no usage)."""
    if not isinstance(body, dict) or not isinstance(body.get("generatedOutput"), str):
        raise ResponseParseError(
            "Gradient's completion answer has no 'generatedOutput' string", body=body, provider="gradient"
        )
    return CompletionResponse(
        text=body["generatedOutput"], raw=body, additional_kwargs={"finish_reason": body.get("finishReason")}
    )


def gradient_error(status: int, body: Any, headers: Mapping[str, str]) -> LLMError | None:
    """Read Gradient's ``{type, message, payload}`` error body; None leaves the generic status mapping."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return None
    kind, message = body["type"], str(body.get("message") or body["type"])
    payload: dict[str, Any] = body["payload"] if isinstance(body.get("payload"), dict) else {}
    text = f"gradient returned HTTP {status} ({kind}): {message}"
    common: dict[str, Any] = {"status_code": status, "provider": "gradient", "body": body}
    if kind == "flaggedContent":
        samples = [
            str(item.get("sample", "")) for item in payload.get("flaggedContent") or [] if isinstance(item, dict)
        ]
        return ContentFilterError(f"{text}; flagged: {samples}", flagged=samples, **common)
    if kind in _NOT_FOUND_TYPES:
        return NotFoundError(text, **common)
    if kind in _BAD_REQUEST_TYPES and status < 500:
        detail = payload.get("formattedValidationError")
        return BadRequestError(f"{text}: {detail}" if detail else text, **common)
    return error_for_status(status, body, headers, "gradient", message=f"({kind}) {message}")


class _BaseGradientLLM(HTTPLLM):
    """What both Gradient LLMs share: configuration, the completion call and its errors."""

    access_token: SecretStr | None = Field(default=None, description="The Gradient access token to use.")
    host: str | None = Field(default=None, description="The url of the Gradient service to access.")
    workspace_id: str | None = Field(default=None, description="The Gradient workspace id to use.")
    is_chat_model: bool = Field(default=False, description="Whether the model is a chat model.")
    max_tokens: int | None = Field(default=None, gt=0, lt=512, description="The number of tokens to generate.")

    #: A pickle never holds the token: one from the environment is read from it again when the pickle is loaded.
    _secret_env: ClassVar[dict[str, tuple[str, ...]]] = {"access_token": ("GRADIENT_ACCESS_TOKEN",)}
    _model_id: str | None = PrivateAttr(default=None)
    _resolve_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[str]] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # Checked here rather than in a validator, so that what is missing is one ConfigurationError, not a
        # pydantic ValidationError.
        if self.access_token is None and (token := _env("GRADIENT_ACCESS_TOKEN")):
            self.access_token = SecretStr(token)
        self.workspace_id = self.workspace_id or _env("GRADIENT_WORKSPACE_ID")
        self.host = (self.host or _env("GRADIENT_API_URL") or DEFAULT_HOST).rstrip("/")
        missing = [
            f"{field} (argument or the {variable} environment variable)"
            for field, variable, value in (
                ("access_token", "GRADIENT_ACCESS_TOKEN", self.access_token),
                ("workspace_id", "GRADIENT_WORKSPACE_ID", self.workspace_id),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(f"Gradient is missing {' and '.join(missing)}")

    @classmethod
    def class_name(cls) -> str:
        return "custom_llm"

    def _provider_name(self) -> str:
        return "gradient"

    @property
    def metadata(self) -> LLMMetadata:
        """Context window 1024, ``num_output`` = ``max_tokens`` or 20, the model's id as its name (the slug until
        the id is resolved, since resolving needs the network)."""
        return LLMMetadata(
            context_window=CONTEXT_WINDOW,
            num_output=self.max_tokens or DEFAULT_NUM_OUTPUT,
            is_chat_model=self.is_chat_model,
            is_function_calling_model=False,
            model_name=self._model_id or self._model_label(),
        )

    def _capabilities(self) -> Capabilities:
        return Capabilities(chat=False, completion=True, streaming=False)

    def _transport_settings(self) -> dict[str, Any]:
        assert self.access_token is not None  # checked at construction
        return {
            "base_url": self.host or DEFAULT_HOST,
            "headers": {
                "Authorization": f"Bearer {self.access_token.get_secret_value()}",
                "x-gradient-workspace-id": self.workspace_id or "",
                "Accept": "application/json",
                "User-Agent": SDK_USER_AGENT,
            },
            "provider": "gradient",
        }

    def _error_hook(self) -> ErrorHook | None:
        return gradient_error

    # -- model resolution: one lookup request, built and read by the subclass -----------------------------------------

    def _model_label(self) -> str:
        raise NotImplementedError

    def _lookup_request(self) -> Request:
        raise NotImplementedError

    def _model_id_from(self, body: Any) -> str:
        raise NotImplementedError

    def _lookup_failed(self, error: NotFoundError) -> NotFoundError:
        return NotFoundError(
            f"Gradient has no model {self._model_label()!r}: {error}",
            status_code=error.status_code,
            provider="gradient",
            body=error.body,
        )

    def model_id(self) -> str:
        """The model's id, looked up on first use and cached."""
        if self._model_id is None:
            with self._resolve_lock:
                if self._model_id is None:
                    try:
                        body = self.transport.request_json(self._lookup_request())
                    except NotFoundError as exc:
                        raise self._lookup_failed(exc) from exc
                    self._model_id = self._model_id_from(body)
        return self._model_id

    async def amodel_id(self) -> str:
        """Async :meth:`model_id`: concurrent first calls share one lookup (per event loop)."""
        if self._model_id is not None:
            return self._model_id
        loop = asyncio.get_running_loop()
        lookup = self._lookups.get(loop)
        if lookup is None:
            lookup = loop.create_task(self._alookup())
            self._lookups[loop] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(loop, None))  # a failed lookup is tried again
        return await asyncio.shield(lookup)

    async def _alookup(self) -> str:
        try:
            body = await self.transport.arequest_json(self._lookup_request())
        except NotFoundError as exc:
            raise self._lookup_failed(exc) from exc
        self._model_id = self._model_id_from(body)
        return self._model_id

    # -- completion -----------------------------------------------------------------------------------------------

    def _completion_request(self, model_id: str, prompt: str, kwargs: dict[str, Any]) -> Request:
        return Request(
            "POST",
            f"/models/{quote(model_id, safe='')}/complete",
            json=completion_body(prompt, self.max_tokens, kwargs),
        )

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        options = call_options(kwargs)
        completion_body(prompt, self.max_tokens, kwargs)  # reject bad arguments before any lookup
        request = self._completion_request(self.model_id(), prompt, kwargs)
        return parse_completion(self.transport.request_json(request, **options))

    async def _acomplete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        options = call_options(kwargs)
        completion_body(prompt, self.max_tokens, kwargs)
        request = self._completion_request(await self.amodel_id(), prompt, kwargs)
        return parse_completion(await self.transport.arequest_json(request, **options))


class GradientBaseModelLLM(_BaseGradientLLM):
    """A Gradient base model, chosen by slug.

    Args:
        base_model_slug: the slug of the base model to use, e.g. ``"llama2-7b-chat"``.
        access_token / workspace_id / host: else ``GRADIENT_ACCESS_TOKEN`` / ``GRADIENT_WORKSPACE_ID`` /
            ``GRADIENT_API_URL`` (default ``https://api.gradient.ai/api``).
        max_tokens: tokens to generate, 0 < max_tokens < 512 (None: the service's default).
        is_chat_model: whether ``predict`` and friends go through ``chat`` (messages flattened to one prompt).

    Per call: ``temperature``, ``top_k``, ``top_p``, ``auto_template``, ``guidance`` (a list of choices), ``rag``
    (a collection id) and ``max_tokens``; any other keyword is a :class:`ConfigurationError`.

    Example:
        >>> llm = GradientBaseModelLLM(base_model_slug="llama2-7b-chat", access_token="t", workspace_id="w")
        >>> llm.class_name()
        'custom_llm'
    """

    base_model_slug: str = Field(description="The slug of the base model to use.")

    def _model_label(self) -> str:
        return self.base_model_slug

    def _lookup_request(self) -> Request:
        return Request("GET", "/models", params={"capability": "any", "onlyBase": "True"})

    def _model_id_from(self, body: Any) -> str:
        models = body.get("models") if isinstance(body, dict) else None
        if not isinstance(models, list):
            raise ResponseParseError("Gradient's model list has no 'models' array", body=body, provider="gradient")
        for model in models:
            if isinstance(model, dict) and model.get("slug") == self.base_model_slug and model.get("id"):
                return str(model["id"])
        slugs = sorted(str(m.get("slug")) for m in models if isinstance(m, dict) and m.get("slug"))
        raise NotFoundError(
            f"Gradient has no base model with slug {self.base_model_slug!r}; available: {', '.join(slugs) or 'none'}",
            status_code=404,
            provider="gradient",
            body=body,
        )


class GradientModelAdapterLLM(_BaseGradientLLM):
    """A fine-tuned Gradient model adapter, chosen by id (same arguments as :class:`GradientBaseModelLLM`).

    Example:
        >>> llm = GradientModelAdapterLLM(model_adapter_id="a" * 50, access_token="t", workspace_id="w")
        >>> llm.metadata.model_name == "a" * 50
        True
    """

    model_adapter_id: str = Field(description="The id of the model adapter to use.")

    def _model_label(self) -> str:
        return self.model_adapter_id

    def _lookup_request(self) -> Request:
        return Request("GET", f"/models/{quote(self.model_adapter_id, safe='')}")

    def _model_id_from(self, body: Any) -> str:
        if not isinstance(body, dict) or not body.get("id"):
            raise ResponseParseError("Gradient's adapter answer has no 'id'", body=body, provider="gradient")
        return str(body["id"])


def base_model_from_spec(slug: str, **kwargs: Any) -> GradientBaseModelLLM:
    """``create("gradient/SLUG")``."""
    return GradientBaseModelLLM(base_model_slug=slug, **kwargs)


def adapter_from_spec(adapter_id: str, **kwargs: Any) -> GradientModelAdapterLLM:
    """``create("gradient-adapter/ID")``."""
    return GradientModelAdapterLLM(model_adapter_id=adapter_id, **kwargs)


__all__ = [
    "GradientBaseModelLLM",
    "GradientModelAdapterLLM",
    "completion_body",
    "gradient_error",
    "parse_completion",
]
