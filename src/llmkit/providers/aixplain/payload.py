"""The body of an aiXplain run, built exactly as the SDK 0.2.48 builds it (Part B.5 of the protocol notes) and
serialised with the same ``json.dumps`` defaults, so the bytes match.

One departure: a ``data`` string that names a local file is sent as text, never uploaded behind the caller's back.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any


def _plain(value: Any) -> Any:
    """Enum members become their values, recursively."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _base_payload(data: Any, parse_json: bool) -> dict[str, Any]:
    """The payload ``data`` starts: a JSON object inside the string becomes the payload itself (the SDK's rule)."""
    if isinstance(data, str) and parse_json:
        try:
            parsed = json.loads(data)
        except ValueError:
            return {"data": data}
        if isinstance(parsed, dict):
            return parsed
        if isinstance(parsed, int | float):  # bools too (an int in Python): "true" is sent as "True", as the SDK
            return {"data": str(parsed)}
        return {"data": parsed}
    return {"data": data}


def build_payload(
    data: Any,
    *,
    context: str | None = None,
    prompt: str | None = None,
    history: list[dict[str, Any]] | None = None,
    temperature: float | None = None,
    default_temperature: float | None = None,
    max_tokens: int = 128,
    top_p: float | None = None,
    parameters: dict[str, Any] | None = None,
    response_format: Any = None,
    stream: bool = False,
    parse_json: bool = True,
) -> dict[str, Any]:
    """The run body: caller ``parameters`` first, then defaults for keys they did not set.

    ``context``, ``prompt``, ``history`` and ``response_format`` are always present (``null`` when unset);
    ``temperature`` is the argument, else the model's default, else omitted; ``top_p`` is omitted when None;
    streaming adds ``options.stream``. With ``parse_json`` (the SDK's behaviour), a ``data`` string holding JSON is
    parsed; llmkit's chat interface turns it off so a prompt is always sent as written.

    Example:
        >>> build_payload("Hi", temperature=0.1, parameters={"custom_param": 1, "max_tokens": 10})
        {'data': 'Hi', 'custom_param': 1, 'max_tokens': 10, 'context': None, 'prompt': None, 'history': None, \
'temperature': 0.1, 'response_format': None}
    """
    params: dict[str, Any] = dict(parameters or {})
    if isinstance(data, dict):
        params = {**data, **params}
        data = data.get("data", "")
    params.setdefault("context", context)
    params.setdefault("prompt", prompt)
    params.setdefault("history", history)
    chosen_temperature = temperature if temperature is not None else default_temperature
    if chosen_temperature is not None:
        params.setdefault("temperature", chosen_temperature)
    params.setdefault("max_tokens", max_tokens)
    if top_p is not None:
        params.setdefault("top_p", top_p)
    params.setdefault("response_format", response_format)
    if stream:
        options = params.get("options")
        params["options"] = {**(options if isinstance(options, dict) else {}), "stream": True}
    payload = _base_payload(data, parse_json)
    payload.update(params)
    plain: dict[str, Any] = _plain(payload)
    return plain


def serialise(payload: dict[str, Any]) -> bytes:
    """``json.dumps`` with its defaults (ASCII escapes, ``", "`` and ``": "`` separators), as the SDK sends it."""
    return json.dumps(payload).encode()
