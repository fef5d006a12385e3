"""JSON on the wire, written once for every request and answer: the hot path of every call.

Bodies are encoded as httpx encodes them (compact, UTF-8, no NaN), with the standard library's C encoder made once
and shared by every thread (``json.dumps`` with options builds a new one per call, half its cost for a chat
request). Answers and stream events are decoded by pydantic-core's parser (already a dependency): about 3x
``json.loads`` on a typical reply. What it refuses and ``json.loads`` reads (a lone surrogate escape such as a split
emoji from a Python server, a UTF-8 byte-order mark, nesting beyond 200 levels) is read by ``json.loads``.

Example:
    >>> encode_json({"model": "m", "messages": [{"role": "user", "content": "héllo"}]})
    b'{"model":"m","messages":[{"role":"user","content":"h\\xc3\\xa9llo"}]}'
    >>> decode_json(b'{"choices": [{"text": "hi"}]}')
    {'choices': [{'text': 'hi'}]}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic_core import from_json

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # absent without the C accelerator
# Without a table of the containers it is inside (markers=None) the C encoder keeps no state, so one serves every
# thread; a circular value then ends in the interpreter's recursion limit, refused below as json refuses it.
_c_encode: Callable[[Any, int], tuple[str, ...] | list[str]] | None = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
)


def encode_json(value: Any) -> bytes:
    """A JSON request body (compact, UTF-8; NaN and circular values refused with ``ValueError``)."""
    if _c_encode is None:
        return _ENCODER.encode(value).encode("utf-8")
    try:
        return "".join(_c_encode(value, 0)).encode("utf-8")
    except RecursionError:
        raise ValueError("Circular reference detected (or a value nested too deeply to send)") from None


def decode_json(data: bytes | str) -> Any:
    """A JSON answer or stream event; ``ValueError`` when it is not one JSON value."""
    try:
        return from_json(data, cache_strings="keys")
    except ValueError:
        pass  # the rare reply pydantic-core refuses and json.loads reads (see the module's docstring)
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON value is nested too deeply to read") from None
