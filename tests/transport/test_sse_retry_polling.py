"""SSE decoding, Retry-After parsing and the polling helper: pure units."""

from __future__ import annotations

import email.utils
import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmkit.transport import PollSchedule, PollTimeout, RetryPolicy, apoll, iter_sse, parse_retry_after, poll


def test_sse_fields_comments_multiline_and_unterminated_last_event() -> None:
    lines = [": comment", "event: delta", "id: 7", "data: line one", "data:line two", "", "retry: 10", "data: last"]
    events = list(iter_sse(lines))
    assert [(e.event, e.id, e.data) for e in events] == [("delta", "7", "line one\nline two"), ("message", "7", "last")]
    assert events[1].retry == 10


def test_sse_blank_lines_alone_dispatch_nothing() -> None:
    assert list(iter_sse(["", "", ":x", ""])) == []


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=20),
        min_size=1,
        max_size=5,
    )
)
def test_sse_data_round_trip(parts: list[str]) -> None:
    lines = [f"data: {p}" for p in parts] + [""]
    (event,) = list(iter_sse(lines))
    assert event.data == "\n".join(parts)


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    future = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.5 < (parse_retry_after({"retry-after": future}) or 0) <= 5.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_bounds_and_cap() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8.0)
    for n in range(1, 10):
        expected = min(0.5 * 2 ** (n - 1), 8.0)
        assert expected * 0.75 <= policy.delay(n) <= expected
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=3600.0) <= 0.5  # absurd hints fall back to backoff


def test_poll_until_done_with_growing_waits() -> None:
    calls: list[float] = []

    def fetch() -> int:
        calls.append(time.monotonic())
        return len(calls)

    assert poll(fetch, lambda n: n >= 4, timeout=5, schedule=PollSchedule(wait=0.05, min_wait=0.01, growth=2)) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[2] > gaps[0]


def test_poll_timeout_reports_last_result() -> None:
    with pytest.raises(PollTimeout) as info:
        poll(lambda: "running", lambda s: False, timeout=0.2, schedule=PollSchedule(wait=0.05, min_wait=0.01))
    assert info.value.last == "running"


async def test_apoll() -> None:
    state = {"n": 0}

    async def fetch() -> int:
        state["n"] += 1
        return state["n"]

    assert await apoll(fetch, lambda n: n == 3, timeout=5, schedule=PollSchedule(wait=0.01, min_wait=0.01)) == 3
