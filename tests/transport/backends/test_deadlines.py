"""ReadDeadlines: one timer for every read timeout of a loop, with asyncio.timeout's cancellation semantics."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmkit.transport.backends.deadlines import ReadDeadlines


async def wait(deadlines: ReadDeadlines, seconds: float, awaitable: object, *, begun: bool = True) -> str:
    """What a backend does around a wait: 'timeout' when the deadline ended it."""
    waiting = deadlines.start(seconds, begun=begun)
    try:
        await awaitable  # type: ignore[misc]
    except asyncio.CancelledError:
        if deadlines.stop(waiting):
            return "timeout"
        raise
    finally:
        deadlines.stop(waiting)
    return "done"


async def test_a_wait_past_its_deadline_is_a_timeout_and_the_task_is_not_left_cancelled() -> None:
    deadlines = ReadDeadlines(asyncio.get_running_loop())
    started = time.monotonic()
    assert await wait(deadlines, 0.05, asyncio.sleep(5)) == "timeout"
    assert 0.04 < time.monotonic() - started < 1
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0.01)  # the task goes on normally


async def test_waits_that_end_in_time_are_never_cancelled_later() -> None:
    deadlines = ReadDeadlines(asyncio.get_running_loop())
    for _ in range(3):
        assert await wait(deadlines, 0.05, asyncio.sleep(0)) == "done"
    await asyncio.sleep(0.1)  # past every deadline: nothing fires at this task


async def test_short_and_long_deadlines_side_by_side() -> None:
    deadlines = ReadDeadlines(asyncio.get_running_loop())
    long = asyncio.ensure_future(wait(deadlines, 5, asyncio.sleep(0.2)))
    await asyncio.sleep(0)
    # started later with an earlier deadline than the timer armed for the long one: the timer moves earlier
    short = asyncio.ensure_future(wait(deadlines, 0.05, asyncio.sleep(5)))
    started = time.monotonic()
    assert await short == "timeout"
    assert time.monotonic() - started < 1
    assert await long == "done"


async def test_many_waits_time_out_each_at_its_own_deadline() -> None:
    deadlines = ReadDeadlines(asyncio.get_running_loop())
    outcomes = await asyncio.gather(
        *(wait(deadlines, 0.02 * (i % 3 + 1), asyncio.sleep(0.03 if i % 2 else 5)) for i in range(30))
    )
    # odd waits finish at 30 ms: in time only when their deadline is later (40 or 60 ms)
    expected = ["timeout" if i % 2 == 0 or i % 3 == 0 else "done" for i in range(30)]
    assert outcomes == expected


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    deadlines = ReadDeadlines(asyncio.get_running_loop())
    task = asyncio.ensure_future(wait(deadlines, 5, asyncio.sleep(5)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_that_comes_with_the_deadline_stays_a_cancellation() -> None:
    loop = asyncio.get_running_loop()
    deadlines = ReadDeadlines(loop)
    task = asyncio.ensure_future(wait(deadlines, 0.02, asyncio.sleep(5)))
    await asyncio.sleep(0)
    loop.call_at(loop.time() + 0.03, task.cancel)  # due in the same loop turn as the deadline, just after it
    time.sleep(0.06)  # hold the loop past both: they run back to back before the task resumes
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_task_already_being_cancelled_still_gets_its_timeout() -> None:
    deadlines = ReadDeadlines(asyncio.get_running_loop())

    async def cleanup_after_cancel() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return await wait(deadlines, 0.02, asyncio.sleep(5))  # a request made while being cancelled
        return "not cancelled"

    task = asyncio.ensure_future(cleanup_after_cancel())
    await asyncio.sleep(0)
    task.cancel()
    assert await task == "timeout"


def test_a_wait_outside_a_task_is_refused() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="inside an asyncio task"):
            ReadDeadlines(loop).start(1)
    finally:
        loop.close()


async def test_a_wait_not_begun_has_no_deadline_until_it_begins() -> None:
    deadlines = ReadDeadlines(asyncio.get_running_loop())

    async def held_then_waits() -> None:
        await asyncio.sleep(0.1)  # e.g. waiting for a pooled connection: not under the read timeout
        deadlines.begin()
        await asyncio.sleep(5)  # then the answer that never comes

    started = time.monotonic()
    assert await wait(deadlines, 0.05, held_then_waits(), begun=False) == "timeout"
    assert 0.14 < time.monotonic() - started < 1
