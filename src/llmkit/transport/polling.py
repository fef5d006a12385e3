"""Polling for services that answer "in progress, ask again here".

Waits grow geometrically (x1.1 by default, up to ``max_wait``) with +/-20% jitter; the loop ends when the result is
done, when ``fetch`` raises, or when ``timeout`` has passed (checked before each poll, so the overshoot is at most
one wait plus one request).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """How to wait between polls."""

    wait: float = 0.5
    min_wait: float = 0.2
    growth: float = 1.1
    max_wait: float = 60.0
    jitter: float = 0.2

    def waits(self) -> Callable[[], float]:
        """A function giving the next wait each time it is called."""
        current = max(self.wait, self.min_wait)

        def next_wait() -> float:
            nonlocal current
            value = current * random.uniform(1 - self.jitter, 1 + self.jitter)
            if current < self.max_wait:
                current = min(current * self.growth, self.max_wait)
            return value

        return next_wait


class PollTimeout(Exception):
    """The job was still running when the polling timeout passed; ``last`` is the last poll's result."""

    def __init__(self, last: object) -> None:
        super().__init__("polling timed out")
        self.last = last


def poll(
    fetch: Callable[[], T], done: Callable[[T], bool], *, timeout: float, schedule: PollSchedule = PollSchedule()
) -> T:
    """Call ``fetch`` until ``done(result)``; the first poll is immediate. Raises :class:`PollTimeout`."""
    start = time.monotonic()
    next_wait = schedule.waits()
    while True:
        result = fetch()
        if done(result):
            return result
        if time.monotonic() - start >= timeout:
            raise PollTimeout(result)
        time.sleep(next_wait())


async def apoll(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float,
    schedule: PollSchedule = PollSchedule(),
) -> T:
    """Async :func:`poll`: sleeps with ``asyncio.sleep``, never blocking the loop."""
    start = time.monotonic()
    next_wait = schedule.waits()
    while True:
        result = await fetch()
        if done(result):
            return result
        if time.monotonic() - start >= timeout:
            raise PollTimeout(result)
        await asyncio.sleep(next_wait())
