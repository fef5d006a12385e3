"""aiXplain's answers: :class:`ResponseStatus`, the dict-like :class:`ModelResponse`, and the SDK's reading rules
(status, error message, error text per HTTP status), from Part B of ``shared/protocols/gradient-and-aixplain.md``."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any

GENERIC_RUN_ERROR = "Model Run: An error occurred while processing your request."
NO_RESPONSE = "No response from the service."


class ResponseStatus(StrEnum):
    """The state of a run: ``IN_PROGRESS``, ``SUCCESS`` or ``FAILED``. ``str(status)`` is the bare value."""

    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


_ALIASES = {"usedCredits": "used_credits", "runTime": "run_time"}
#: What ``r[key]`` reads as an attribute (the SDK reads its instance ``__dict__``).
_ATTRIBUTES = frozenset(
    {"status", "data", "details", "completed", "error_message", "used_credits", "run_time", "usage", "url",
     "error_code", "asset", "additional_fields"}
)  # fmt: skip


class ModelResponse:
    """One answer of the service, readable as attributes or as a dict, as the SDK's ``ModelResponse``.

    ``r[key]`` reads an attribute, else an additional field, else the ``usedCredits``/``runTime`` aliases;
    ``r[key] = value`` sets the same places (a key found nowhere is a ``KeyError``, as in the SDK).

    Example:
        >>> r = ModelResponse(status=ResponseStatus.SUCCESS, data="Hi", completed=True, used_credits=0.002)
        >>> r["data"], r["usedCredits"], "data" in r
        ('Hi', 0.002, True)
        >>> r["usedCredits"] = 0.5
        >>> r.used_credits
        0.5
    """

    def __init__(
        self,
        status: ResponseStatus | str = ResponseStatus.FAILED,
        data: Any = "",
        details: Any = None,
        completed: Any = False,
        error_message: Any = "",
        used_credits: Any = 0.0,
        run_time: Any = 0.0,
        usage: dict[str, Any] | None = None,
        url: Any = None,
        error_code: str | None = None,
        asset: dict[str, Any] | None = None,
        **additional_fields: Any,
    ) -> None:
        self.status = ResponseStatus(status) if status in ResponseStatus._value2member_map_ else status
        self.data = data
        self.details = {} if details is None else details
        self.completed = completed
        if error_message == "":  # the SDK's rule: else ``error``, then `` - <supplierError>`` when that key is present
            error_message = additional_fields.get("error", "")
            if "supplierError" in additional_fields:
                error_message = f"{error_message} - {additional_fields['supplierError']}"
        self.error_message = error_message
        self.used_credits = used_credits
        self.run_time = run_time
        self.usage = usage
        self.url = url
        self.error_code = error_code
        self.asset = asset
        self.additional_fields = additional_fields
        #: The exception behind a FAILED response built by llmkit (a refused request, a broken connection), if any.
        self.exception: BaseException | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any], *, status: Any = None, aliases: bool = True) -> ModelResponse:
        """Read a result or poll body with the SDK's rules (unlike the SDK, an ``error_code`` key is no crash).

        ``status`` overrides the body's; without ``aliases`` (``run_async``'s reading) ``usedCredits`` and
        ``runTime`` stay additional fields, as the SDK leaves them there.
        """
        rest = dict(body)
        rest.pop("status", None)
        named: dict[str, Any] = {
            "data": rest.pop("data", ""),
            "details": rest.pop("details", {}),
            "completed": rest.pop("completed", False),
            "error_message": rest.pop("error_message", ""),
        }
        if aliases:
            named["used_credits"] = rest.pop("usedCredits", 0)
            named["run_time"] = rest.pop("runTime", 0)
        for key in ("usage", "asset", "url", "error_code"):
            if key in rest:
                named[key] = rest.pop(key)
        return cls(status=status_of(body) if status is None else status, **named, **rest)

    # -- the dict view ------------------------------------------------------------------------------------------

    def _fields(self) -> dict[str, Any]:
        fields = {
            "status": self.status,
            "data": self.data,
            "details": self.details,
            "completed": self.completed,
            "error_message": self.error_message,
            "used_credits": self.used_credits,
            "run_time": self.run_time,
            "usage": self.usage,
            "asset": self.asset,
            "url": self.url,
            "error_code": self.error_code,
        }
        return {**fields, **self.additional_fields}

    def __getitem__(self, key: str) -> Any:
        if key in _ATTRIBUTES:
            return getattr(self, key)
        if key in self.additional_fields:
            return self.additional_fields[key]
        if key in _ALIASES:
            return getattr(self, _ALIASES[key])
        raise KeyError(f"Key '{key}' not found in ModelResponse.")

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _ATTRIBUTES:
            setattr(self, key, value)
        elif key in self.additional_fields:
            self.additional_fields[key] = value
        elif key in _ALIASES:
            setattr(self, _ALIASES[key], value)
        else:
            raise KeyError(f"Key '{key}' not found in ModelResponse.")

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in _ATTRIBUTES or key in self.additional_fields or key in _ALIASES)

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def keys(self) -> list[str]:
        return list(self._fields())

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (the status as its string value)."""
        out = self._fields()
        out["status"] = str(self.status)
        return out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ModelResponse):
            return self.to_dict() == other.to_dict()
        return NotImplemented

    def __repr__(self) -> str:
        return f"ModelResponse({self.to_dict()!r})"


def failed(message: str, *, completed: bool = True, exception: BaseException | None = None) -> ModelResponse:
    """A FAILED response built by llmkit."""
    response = ModelResponse(status=ResponseStatus.FAILED, completed=completed, error_message=message)
    response.exception = exception
    return response


def status_of(body: dict[str, Any]) -> Any:
    """The SDK's status rule for a poll or result body: a known ``status`` string as is; a status that is not a
    string, as sent; otherwise ``completed`` decides (FAILED when ``error_message``/``supplierError`` is present)."""
    if body.get("completed") is True:
        computed = (
            ResponseStatus.FAILED if "error_message" in body or "supplierError" in body else ResponseStatus.SUCCESS
        )
    else:
        computed = ResponseStatus.IN_PROGRESS
    if "status" not in body:
        return computed
    status = body["status"]
    if isinstance(status, str):
        return ResponseStatus(status) if status in ResponseStatus._value2member_map_ else computed
    return status


def error_message_of(body: dict[str, Any]) -> str:
    """``error_message`` as is; else ``error``, then `` - <supplierError>`` when that key is present."""
    if body.get("error_message"):
        return str(body["error_message"])
    message = str(body.get("error") or "")
    if "supplierError" in body:
        message += f" - {body['supplierError']}"
    return message


# The SDK's texts (aixplain 0.2.48, ``aixplain.exceptions.get_error_from_status_code``), word for word.
_STATUS_TEXT = {
    400: "Bad request: Please verify the request payload and ensure it is correct.",
    401: "Unauthorized API key: Please verify the spelling of the API key and its current validity.",
    402: "Payment required: Please ensure you have enough credits to run this asset.",
    403: "Forbidden access: Please verify the API key and its current validity.",
    404: "Resource not found: Please verify the spelling of the resource and its current availability.",
    429: "Rate limit exceeded: Please try again later.",
    500: "Internal server error: Please try again later.",
    503: "Service unavailable: Please try again later.",
    504: "Gateway timeout: Please try again later.",
}
_STATUS_RANGES = (
    (460, "Subscription-related error: Please ensure that your subscription is active and has not expired."),
    (470, "Billing-related error: Please ensure you have enough credits to run this asset."),
    (
        480,
        "Supplier-related error: Please ensure that the selected supplier provides the asset you are trying to access.",
    ),
    (490, "Validation-related error: Please verify the request payload and ensure it is correct."),
)
#: What the SDK says about a body that is not JSON.
UNSPECIFIED_DETAIL = "unspecified error"


def status_error_text(status: int, body: Any, *, is_json: bool = True) -> str:
    """The SDK's message for a non-2xx run answer: ``"<text> Details: <detail>"``.

    The detail is the body's ``error`` when the body is a JSON object with one, else the whole JSON body (a string,
    list, number, ...), else (``is_json=False``) "unspecified error"; an empty detail leaves ``Details:`` out.

    Example:
        >>> status_error_text(402, {"error": "no credits"})
        'Payment required: Please ensure you have enough credits to run this asset. Details: no credits'
        >>> status_error_text(502, "<html>", is_json=False)
        'Unspecified Server Error (Status 502) Details: unspecified error'
    """
    text = _STATUS_TEXT.get(status)
    if text is None:
        text = next((t for start, t in _STATUS_RANGES if start <= status < start + 10), None)
    if text is None:
        text = f"Unspecified {'Client' if 400 <= status < 500 else 'Server'} Error (Status {status})"
    if not is_json:
        detail: Any = UNSPECIFIED_DETAIL
    elif isinstance(body, dict) and "error" in body:
        detail = body["error"]
    else:
        detail = body
    return f"{text} {f'Details: {detail}' if detail else ''}".strip()
