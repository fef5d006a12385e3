"""The JSON codec every request and answer goes through: the same bytes httpx would send, the same values
``json.loads`` would read, a typed refusal for what JSON cannot carry."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmkit.transport.codec import decode_json, encode_json

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=25
)


def _httpx_bytes(value: Any) -> bytes:
    """How httpx encodes ``json=`` (what the OpenAI SDK sends)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


@given(JSON_VALUES)
def test_request_bodies_are_httpx_bytes(value: Any) -> None:
    assert encode_json(value) == _httpx_bytes(value)


@given(JSON_VALUES)
def test_answers_read_as_json_loads_reads_them(value: Any) -> None:
    text = json.dumps(value)
    assert decode_json(text) == json.loads(text)
    assert decode_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize("value", [math.nan, math.inf, {"temperature": -math.inf}])
def test_nan_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_json(value)


def test_a_circular_body_is_a_value_error_not_a_crash() -> None:
    body: dict[str, Any] = {"model": "m"}
    body["self"] = body
    with pytest.raises(ValueError, match="Circular reference"):
        encode_json(body)
    assert encode_json({"model": "m", "n": [1, {"a": None}]}) == b'{"model":"m","n":[1,{"a":null}]}'  # still fine


def test_threads_encode_at_once() -> None:
    bodies = [{"model": f"m{i}", "messages": [{"role": "user", "content": "x" * i}] * 20} for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(encode_json, bodies)) == [_httpx_bytes(body) for body in bodies]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"content": "\\ud83d"}', {"content": "\ud83d"}),  # half an emoji, as a Python server escapes it
        ("\ufeff" + '{"a": 1}', {"a": 1}),  # a byte-order mark
        ("[" * 300 + "]" * 300, json.loads("[" * 300 + "]" * 300)),
    ],
)
def test_what_json_loads_reads_is_read(text: str, value: Any) -> None:
    assert decode_json(text.encode()) == value


def test_objects_json_cannot_carry_are_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_json({"when": object()})


@pytest.mark.parametrize(
    "text", ["", "{", '{"a":1} trailing', "[" * 5000 + "]" * 5000, b"\xff", "<html>busy</html>"]
)
def test_what_is_not_one_json_value_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError, match=r"line \d+ column \d+|nested too deeply|decode"):
        decode_json(text)
