"""llmkit's errors as OpenAI-shaped error replies: ``{"error": {"message", "type", "param", "code"}}`` with the status
a client of OpenAI's API expects, and the upstream's Retry-After passed on.

The upstream's own credentials are the gateway's business: an upstream 401/403/404 is a 502 for the client (its key
was fine), with the reason in the message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from llmkit.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentFilterError,
    LLMError,
    NoDeploymentAvailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseParseError,
    StreamError,
)


@dataclass(frozen=True)
class GatewayError(Exception):
    """An error the gateway answers with: HTTP status, OpenAI error type and code, and an optional Retry-After."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None

    def body(self) -> bytes:
        """The JSON error body."""
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return json.dumps({"error": error}).encode()

    def headers(self) -> dict[str, str]:
        """Retry-After, when there is one."""
        return {"retry-after": str(max(int(self.retry_after + 0.999), 1))} if self.retry_after is not None else {}


def from_llm_error(exc: BaseException) -> GatewayError:
    """The reply for an error raised while answering (the upstream's, or llmkit's)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ContentFilterError):
        return GatewayError(400, message, code="content_filter")
    if isinstance(exc, RateLimitError):
        return GatewayError(429, message, "rate_limit_error", "rate_limit_exceeded", retry_after=exc.retry_after)
    if isinstance(exc, NoDeploymentAvailableError):
        return GatewayError(503, message, "service_unavailable", "no_deployment_available", retry_after=exc.retry_after)
    if isinstance(exc, AuthenticationError | PermissionDeniedError | NotFoundError):
        return GatewayError(502, f"upstream refused the gateway: {message}", "upstream_error", "upstream_refused")
    if isinstance(exc, BadRequestError):
        return GatewayError(400, message)
    if isinstance(exc, APIStatusError):
        status = exc.status_code if 400 <= exc.status_code < 500 else 502
        return GatewayError(status, message, "upstream_error" if status == 502 else "invalid_request_error")
    if isinstance(exc, APITimeoutError):
        return GatewayError(504, message, "timeout", "upstream_timeout")
    if isinstance(exc, APIConnectionError):
        return GatewayError(502, message, "upstream_error", "upstream_unreachable")
    if isinstance(exc, StreamError | ResponseParseError):
        return GatewayError(502, message, "upstream_error", "upstream_malformed")
    if isinstance(exc, ConfigurationError | ValueError):
        return GatewayError(400, message)
    if isinstance(exc, LLMError):
        return GatewayError(500, message, "server_error")
    return GatewayError(500, "internal error", "server_error")
