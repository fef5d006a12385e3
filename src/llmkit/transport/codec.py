"""JSON on the wire, written once for every request and answer: the hot path of every call.

Bodies are encoded as httpx encodes them (compact, UTF-8, no NaN), with the standard library's C encoder kept
across calls (``json.dumps`` with options builds a new one per call, half its cost for a chat request). Answers and
stream events are decoded by pydantic-core's parser (already a dependency): about 3x ``json.loads`` on a typical
reply, nesting bounded, keys interned.

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
_c_encoder: Callable[[Any, int], tuple[str, ...] | list[str]] | None = None
if _c_make_encoder is not None:
    # markers=None: no per-call table of containers seen (a circular value hits the recursion limit instead)
    _c_encoder = _c_make_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )


def encode_json(value: Any) -> bytes:
    """A JSON request body (compact, UTF-8, NaN refused: ``ValueError``; a circular value: ``ValueError``)."""
    if _c_encoder is None:
        return _ENCODER.encode(value).encode("utf-8")
    try:
        return "".join(_c_encoder(value, 0)).encode("utf-8")
    except RecursionError:
        raise ValueError("the JSON body is circular (or nested too deeply to send)") from None


def decode_json(data: bytes | str) -> Any:
    """A JSON answer or stream event; ``ValueError`` when it is not one JSON value."""
    return from_json(data, cache_strings="keys")
