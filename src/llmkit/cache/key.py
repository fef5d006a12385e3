"""The cache key: a hash of the canonical JSON of one normalised request.

What goes in is what can change the answer: the wrapped LLM's provider and settings (model, base URL, sampling
parameters, system prompt, prompt transforms), the endpoint, the messages or prompt (content blocks included, bytes by
digest), and the call's keyword arguments (tools by their schema, response formats, output classes by their JSON
schema). What never goes in: keys and other secrets, timeouts, retry settings, headers, callbacks. Dict order and
keyword order do not matter.

A request holding something that cannot be written canonically (an arbitrary object among the call's arguments) has
no key: it is not cached rather than risk two different requests sharing an answer.

Example:
    >>> from llmkit import ChatMessage, MockLLM
    >>> from llmkit.cache.key import request_key
    >>> from llmkit.wrapper import LLMCall
    >>> llm = MockLLM()
    >>> a = request_key(llm, LLMCall.chat([ChatMessage(content="hi")], {"temperature": 0, "top_p": 1}), "default")
    >>> b = request_key(llm, LLMCall.chat([ChatMessage(content="hi")], {"top_p": 1, "temperature": 0}), "default")
    >>> a == b, len(a)
    (True, 64)
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import types
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from llmkit.types import TextBlock
from llmkit.wrapper import LLMCall

KEY_VERSION = 1

# Settings that change how a call is made, never what it answers (and the ones that hold secrets).
_NOT_IN_KEY = frozenset(
    {
        "api_key",
        "timeout",
        "max_retries",
        "retry_policy",
        "callback_manager",
        "default_headers",
        "extra_headers",
        "allow_insecure_http",
        "max_body_bytes",
        "stream_idle_timeout",
        "poll_interval",
        "verbose",
    }
)


class Uncacheable(Exception):
    """The request holds something with no canonical form; the call goes through uncached."""


def _digest(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest()}


def _canonical(value: Any, strict: bool) -> Any:
    """``value`` as plain JSON data. ``strict``: an unknown object makes the request uncacheable (call arguments);
    otherwise it is named by its type (settings of the LLM, such as a shared state object)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # the common cases first: this is the hot path
        return value
    if kind is dict:
        return {str(k): _canonical(v, strict) for k, v in value.items() if k not in _NOT_IN_KEY}
    if kind is list or kind is tuple:
        return [_canonical(v, strict) for v in value]
    return _canonical_object(value, strict)


def _canonical_object(value: Any, strict: bool) -> Any:
    if isinstance(value, enum.Enum):  # before str/int: a StrEnum member is both
        return _canonical(value.value, strict)
    if isinstance(value, bool | int | str):  # a subclass of one (the exact types never get here)
        return bool(value) if isinstance(value, bool) else int(value) if isinstance(value, int) else str(value)
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _digest(bytes(value))
    if isinstance(value, SecretStr):
        return None
    if isinstance(value, dict):
        return {str(k): _canonical(v, strict) for k, v in value.items() if str(k) not in _NOT_IN_KEY}
    if isinstance(value, list | tuple):
        return [_canonical(v, strict) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v, strict) for v in value), key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, Path):
        try:
            stat = value.stat()
        except OSError:
            return {"path": str(value)}
        return {"path": str(value), "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}
    if isinstance(value, type) and issubclass(value, BaseModel):
        return {"schema": value.model_json_schema()}
    metadata = getattr(value, "metadata", None)
    if metadata is not None and hasattr(metadata, "to_openai_tool"):  # a tool: its schema is what the model sees
        return {"tool": metadata.to_openai_tool()}
    if isinstance(value, BaseModel):
        return _model_fields(value, strict)
    if callable(value):
        return _callable(value)
    if strict:
        raise Uncacheable(type(value).__name__)
    return {"object": type(value).__qualname__}


def _callable(function: Any) -> dict[str, Any]:
    """A function by name and code: two lambdas of one scope share a name, never their bytecode and constants."""
    name = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', type(function).__qualname__)}"
    code = getattr(function, "__code__", None)
    return {"callable": name} if code is None else {"callable": name, "code": _code_digest(code)}


@functools.lru_cache(maxsize=4096)  # code objects are immutable: a digest never goes stale
def _code_digest(code: types.CodeType) -> str:
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:  # nested functions by their own code, never by a repr holding an address
        digest.update(_code_digest(const).encode() if isinstance(const, types.CodeType) else repr(const).encode())
    digest.update(repr(code.co_names).encode())
    return digest.hexdigest()


def _model_fields(model: BaseModel, strict: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(model).__qualname__}
    for name, value in model.__dict__.items():  # a pydantic model keeps its fields there
        if name not in _NOT_IN_KEY:
            out[name] = _canonical(value, strict)
    return out


def _settings(llm: Any) -> dict[str, Any]:
    """What identifies the answering LLM: its class and every setting that can change an answer."""
    settings = _model_fields(llm, strict=False)
    settings["provider"] = llm.class_name()
    inner = llm.__dict__.get("llm")
    if isinstance(inner, BaseModel):  # a wrapper: what it wraps answers
        settings["llm"] = _settings(inner)
    return settings


def _snapshot(llm: Any) -> tuple[Any, ...]:
    """Identifies the LLM's current settings cheaply: which object each field holds, and the value of every mutable
    container (a dict changed in place keeps its identity). Wrapped LLMs included."""
    fields = llm.__dict__
    values = tuple(fields.values())
    parts: list[Any] = [tuple(map(id, values))]
    for value in values:
        kind = type(value)
        if (kind is dict or kind is list or kind is set) and value:
            parts.append(json.dumps(_canonical(value, False), sort_keys=True, default=repr))
    inner = fields.get("llm")
    if isinstance(inner, BaseModel):
        parts.append(_snapshot(inner))
    return tuple(parts)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_refuse)


def _message(message: Any) -> bytes:
    if not message.additional_kwargs and all(type(block) is TextBlock for block in message.blocks):
        try:  # the common case: text only, written by pydantic in its fixed field order, without the walk
            return bytes(message.model_dump_json().encode())
        except ValueError:  # a lone surrogate: the walk below keeps it
            pass
    return _dumps(_canonical(message.model_dump(), strict=True)).encode("utf-8", "surrogatepass")


def _part(digest: Any, data: bytes) -> None:
    """One field of the request, length-prefixed so that no two requests hash the same bytes."""
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


class RequestKey:
    """Keys requests made on one LLM. The LLM's settings are written once and again only when one changes (a new
    value assigned, or a dict or list changed in place); each call then hashes only its own fields."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self._snapshot: tuple[Any, ...] | None = None
        self._settings = hashlib.sha256()

    def __call__(self, call: LLMCall, namespace: str) -> str:
        """The hex key of ``call`` (raises :class:`Uncacheable` when it has no canonical form)."""
        snapshot = _snapshot(self.llm)
        if snapshot != self._snapshot:
            settings = hashlib.sha256()
            _part(settings, str(KEY_VERSION).encode())
            _part(settings, _dumps(_settings(self.llm)).encode("utf-8", "surrogatepass"))
            self._settings, self._snapshot = settings, snapshot
        digest = self._settings.copy()
        _part(digest, namespace.encode("utf-8", "surrogatepass"))
        _part(digest, call.endpoint.encode())
        _part(digest, call.prompt.encode("utf-8", "surrogatepass"))
        _part(digest, b"1" if call.formatted else b"0")
        _part(digest, len(call.messages).to_bytes(8, "little"))
        for message in call.messages:
            _part(digest, _message(message))
        kwargs = _dumps(_canonical(call.kwargs, strict=True)) if call.kwargs else ""
        _part(digest, kwargs.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()


def request_key(llm: Any, call: LLMCall, namespace: str) -> str:
    """The hex key of ``call`` made on ``llm`` (raises :class:`Uncacheable` when it has no canonical form)."""
    return RequestKey(llm)(call, namespace)


def _refuse(value: Any) -> Any:
    raise Uncacheable(type(value).__name__)
