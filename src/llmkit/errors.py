"""The one error hierarchy of llmkit.

Every failure a caller can see is an :class:`LLMError`. Messages say what happened and what to do about it;
they never contain a secret (API keys are held as ``SecretStr`` and never formatted into text).

Example:
    >>> from llmkit.errors import RateLimitError, APIStatusError
    >>> issubclass(RateLimitError, APIStatusError)
    True
"""

from __future__ import annotations

from typing import Any


class LLMError(Exception):
    """Root of every error llmkit raises."""


class ConfigurationError(LLMError, ValueError):
    """A missing key, a bad field or a missing extra; the message names the fix."""


class UsageError(LLMError, RuntimeError):
    """The API was used in a way that cannot work (e.g. a second call from a thread whose stream is still open)."""


class TemplateError(ConfigurationError):
    """A prompt template that cannot be parsed or filled (stray braces, a positional ``{}``, a missing variable);
    the message says what to change."""


class OutputTypeError(ConfigurationError, TypeError):
    """An ``output_cls`` that structured output cannot use; the message names the accepted types."""


class SerializationError(UsageError, TypeError):
    """An LLM that cannot be pickled (e.g. it holds a key given in code, which a pickle would store in clear);
    the message names the fix."""


class APIConnectionError(LLMError):
    """The service could not be reached (refused, reset, DNS, TLS)."""

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider


class APITimeoutError(APIConnectionError):
    """A connect, read or total timeout expired."""


class APIStatusError(LLMError):
    """The service answered with an error status.

    Attributes:
        status_code: the HTTP status.
        provider: the provider that called the service.
        request_id: the service's request id, when it sent one.
        body: the parsed error body (JSON when possible, else the text).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        provider: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.provider = provider
        self.request_id = request_id
        self.body = body


class BadRequestError(APIStatusError):
    """400 and 422, or a 500 whose body says the request was invalid."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, wrong or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this resource."""


class NotFoundError(APIStatusError):
    """404: unknown model, adapter, URL or resource."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the state of the resource (retried)."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds, when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the service failed."""


class ContentFilterError(BadRequestError):
    """The service refused the content; ``flagged`` holds the samples it flagged."""

    def __init__(self, message: str, *, flagged: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.flagged = flagged or []


class JobFailedError(LLMError):
    """The service ran the request and reported that it failed (a supplier error, a model error).

    Attributes:
        error_code: the service's code for the failure, when it gave one.
        response: the service's answer, as a dict.
    """

    def __init__(
        self, message: str, *, error_code: str | None = None, response: Any = None, provider: str | None = None
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.response = response
        self.provider = provider


class StreamError(LLMError):
    """A stream broke or carried a malformed event. ``received`` is the text that arrived before it broke."""

    def __init__(self, message: str, *, received: str = "", provider: str | None = None) -> None:
        super().__init__(message)
        self.received = received
        self.provider = provider


class ResponseParseError(LLMError):
    """A reply did not have the shape the protocol promises. ``body`` is what arrived."""

    def __init__(self, message: str, *, body: Any = None, provider: str | None = None) -> None:
        super().__init__(message)
        self.body = body
        self.provider = provider


class StructuredOutputError(LLMError):
    """The model's output failed validation after every re-ask.

    Attributes:
        raw: the last raw text the model produced.
        errors: pydantic's error list for that text (empty when the text was not JSON at all).
    """

    def __init__(self, message: str, *, raw: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.errors = errors or []


class ToolCallError(LLMError, ValueError):
    """The model asked for an unknown tool, or gave arguments that do not validate (a ``ValueError``, as LlamaIndex
    raises)."""

    def __init__(self, message: str, *, tool_name: str | None = None, arguments: Any = None) -> None:
        super().__init__(message)
        self.tool_name = tool_name
        self.arguments = arguments


class ToolArgumentsError(ToolCallError):
    """A tool was called with arguments its function does not take (``unknown``) or that do not validate
    (``errors``, pydantic's list). ``predict_and_call`` reports it as an error output the model can read."""

    def __init__(
        self,
        message: str,
        *,
        tool_name: str | None = None,
        arguments: Any = None,
        unknown: list[str] | None = None,
        errors: list[Any] | None = None,
    ) -> None:
        super().__init__(message, tool_name=tool_name, arguments=arguments)
        self.unknown = unknown or []
        self.errors = errors or []


class InputError(LLMError, ValueError):
    """An argument a call cannot use (no prompt, a message that is not a message); the message says what to pass."""


class NoDeploymentAvailableError(LLMError):
    """A router found no deployment to answer: every one is cooling down, at its limits, or failed this call.

    Attributes:
        group: the model group asked for.
        attempts: ``(deployment, error)`` for each deployment tried, in order.
        retry_after: seconds until the earliest cooldown or limit window ends, when that is what stopped it.
    """

    def __init__(
        self, message: str, *, group: str, attempts: list[tuple[str, BaseException]], retry_after: float | None
    ) -> None:
        super().__init__(message)
        self.group = group
        self.attempts = attempts
        self.retry_after = retry_after


class RouterStateError(LLMError):
    """The router's shared state (Redis) could not be read or written."""


class CacheError(LLMError):
    """The response cache's store could not be used: a damaged or foreign file, an unreachable Redis. The message
    names the store and the fix."""


def configuration_error(cls: type[Any], error: Any) -> ConfigurationError:
    """A pydantic ``ValidationError`` from building ``cls`` as one readable :class:`ConfigurationError`: each
    problem with the argument it concerns, the closest valid name for an unknown one, and never the values given
    (they may be keys)."""
    import difflib

    fields = getattr(cls, "model_fields", {})
    names = sorted(set(fields) | {a for f in fields.values() for a in _aliases(f)})
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigurationError):
            return cause  # a validator's own message already names the fix
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(item["loc"][-1]), names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid arguments: {', '.join(names)}"
            problems.append(f"unknown argument {where!r}{hint}")
        else:
            problems.append(f"{where}: {item['msg']}")
    return ConfigurationError(f"{cls.__name__}: " + "; ".join(problems))


def _aliases(field: Any) -> list[str]:
    alias = getattr(field, "validation_alias", None)
    choices = getattr(alias, "choices", None)
    if choices is not None:
        return [c for c in choices if isinstance(c, str)]
    return [alias] if isinstance(alias, str) else []


def missing_extra(package: str, extra: str) -> ConfigurationError:
    """The error for an optional dependency that is not installed, naming the extra that brings it."""
    return ConfigurationError(
        f"This feature needs the '{package}' package, which is not installed. "
        f"Install it with: pip install 'llmkit[{extra}]'"
    )
