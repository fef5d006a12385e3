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
_WIRE_KEYS = {
    "status": "status",
    "data": "data",
    "details": "details",
    "completed": "completed",
    "error_message": "error_message",
    "usedCredits": "used_credits",
    "runTime": "run_time",
    "usage": "usage",
    "url": "url",
    "error_code": "error_code",
    "asset": "asset",
}


class ModelResponse:
    """One answer of the service, readable as attributes or as a dict.

    Example:
        >>> r = ModelResponse(status=ResponseStatus.SUCCESS, data="Hi", completed=True, used_credits=0.002)
        >>> r["data"], r["usedCredits"], "data" in r
        ('Hi', 0.002, True)
    """

    def __init__(
        self,
        status: ResponseStatus | str = ResponseStatus.FAILED,
        data: Any = "",
        details: dict[str, Any] | list[Any] | None = None,
        completed: bool = False,
        error_message: str = "",
        used_credits: float = 0.0,
        run_time: float = 0.0,
        usage: dict[str, Any] | None = None,
        url: str | None = None,
        error_code: str | None = None,
        asset: dict[str, Any] | None = None,
        **additional_fields: Any,
    ) -> None:
        self.status = ResponseStatus(status) if status in ResponseStatus._value2member_map_ else status
        self.data = data
        self.details = {} if details is None else details
        self.completed = completed
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
    def from_body(cls, body: dict[str, Any]) -> ModelResponse:
        """Read a result or poll body with the SDK's rules (unlike the SDK, an ``error_code`` key is no crash)."""
        known = {attr: body[key] for key, attr in _WIRE_KEYS.items() if key in body}
        extra = {key: value for key, value in body.items() if key not in _WIRE_KEYS}
        known["status"] = status_of(body)
        known["completed"] = bool(body.get("completed", False))
        known["error_message"] = error_message_of(body)
        for attr in ("used_credits", "run_time"):
            known[attr] = known.get(attr) or 0.0
        if known.get("data") is None:
            known["data"] = ""
        return cls(**known, **extra)

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
            "url": self.url,
            "error_code": self.error_code,
            "asset": self.asset,
        }
        return {**fields, **self.additional_fields}

    def __getitem__(self, key: str) -> Any:
        fields = self._fields()
        key = _ALIASES.get(key, key)
        if key not in fields:
            raise KeyError(key)
        return fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _ALIASES.get(key, key) in self._fields()

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


def status_of(body: dict[str, Any]) -> ResponseStatus:
    """The SDK's status rule for a poll or result body."""
    status = body.get("status")
    if isinstance(status, str) and status in ResponseStatus._value2member_map_:
        return ResponseStatus(status)
    if body.get("completed") is True:
        if "error_message" in body or "supplierError" in body:
            return ResponseStatus.FAILED
        return ResponseStatus.SUCCESS
    return ResponseStatus.IN_PROGRESS


def error_message_of(body: dict[str, Any]) -> str:
    """``error_message`` as is; else ``error``, then `` - <supplierError>`` when that key is present."""
    if body.get("error_message"):
        return str(body["error_message"])
    message = str(body.get("error") or "")
    if "supplierError" in body:
        message += f" - {body['supplierError']}"
    return message


_STATUS_TEXT = {
    400: "Bad request: Please verify the request payload and ensure it is correctly formatted.",
    401: "Unauthorized API key: Please verify the spelling of the API key and its current validity.",
    402: "Payment required: Please ensure you have enough credits to run this asset.",
    403: "Forbidden access: Please verify the API key and the permissions of the asset.",
    404: "Resource not found: Please verify the spelling of the asset and its current availability.",
    429: "Rate limit exceeded: Please try again later.",
    500: "Internal server error: Please try again later.",
    503: "Service unavailable: Please try again later.",
    504: "Gateway timeout: Please try again later.",
}
_STATUS_RANGES = (
    (460, "Subscription-related error: Please ensure that your subscription is active and has not expired."),
    (470, "Billing-related error: Please ensure you have enough credits to run this asset."),
    (480, "Supplier-related error: Please ensure that the selected supplier provides the asset you are trying to use."),
    (490, "Validation-related error: Please ensure all required fields are provided and correctly formatted."),
)


def status_error_text(status: int, body: Any) -> str:
    """The SDK's message for a non-2xx run answer: ``"<text> Details: <detail>"``."""
    text = _STATUS_TEXT.get(status)
    if text is None:
        text = next((t for start, t in _STATUS_RANGES if start <= status < start + 10), None)
    if text is None:
        text = f"Unspecified Client/Server Error (Status {status})"
    if isinstance(body, dict) and "error" in body:
        detail = body["error"]
    elif isinstance(body, dict | list):
        detail = body
    else:
        detail = "unspecified error"
    return f"{text} Details: {detail}"
