"""HTTP status and body -> the typed error, with the provider's error body parsed and the request id kept."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from llmkit.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    LLMError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from llmkit.transport.retry import parse_retry_after

#: A provider's own reading of an error body: return an error to raise, or None for the generic mapping. The headers
#: are a case-insensitive mapping (whichever HTTP library's).
ErrorHook = Callable[[int, Any, Mapping[str, str]], LLMError | None]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")
_TAGS = re.compile(r"<[^>]+>")
_VALIDATION_HINTS = ("validation error", "invalid request", "bad request", "input should be")


class TextBody(str):
    """A body that was not JSON, as its text (so a reader can tell it from a JSON string)."""


def parse_body(content: bytes) -> Any:
    """The body as JSON when it is JSON, else as text (a :class:`TextBody`)."""
    text = content.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return TextBody(text)


def error_message(body: Any) -> str:
    """The human message inside common error-body shapes, or an excerpt of a text/HTML body."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "error", "detail", "error_message"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)
        return json.dumps(body)[:500]
    text = _TAGS.sub(" ", str(body))
    return " ".join(text.split())[:500]


def status_error(
    status: int, content: bytes, headers: Mapping[str, str], provider: str, hook: ErrorHook | None = None
) -> LLMError:
    """The error for a non-2xx answer."""
    body = parse_body(content)
    if hook is not None:
        custom = hook(status, body, headers)
        if custom is not None:
            return custom
    return error_for_status(status, body, headers, provider)


def error_for_status(
    status: int, body: Any, headers: Mapping[str, str], provider: str, message: str | None = None
) -> APIStatusError:
    """The generic error for a status and a parsed body; ``message`` replaces the one read from the body."""
    message = message or error_message(body) or httpx.codes.get_reason_phrase(status)
    request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
    text = f"{provider} returned HTTP {status}: {message}"
    if request_id:
        text += f" (request id {request_id})"
    common: dict[str, Any] = {"status_code": status, "provider": provider, "request_id": request_id, "body": body}
    cls: type[APIStatusError]
    if status in (400, 422):
        cls = BadRequestError
    elif status == 401:
        cls = AuthenticationError
    elif status == 403:
        cls = PermissionDeniedError
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = ConflictError
    elif status == 429:
        return RateLimitError(text, retry_after=parse_retry_after(headers), **common)
    elif status >= 500:
        # Some servers (llama.cpp's among them) answer a request validation failure with a 500.
        lowered = message.lower()
        cls = BadRequestError if any(hint in lowered for hint in _VALIDATION_HINTS) else ServerError
    else:
        cls = APIStatusError
    return cls(text, **common)
