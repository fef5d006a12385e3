"""Read timeouts for every request on one event loop, kept with one timer between them.

aiohttp's own read timeout (``sock_read``) cancels and arms an event-loop timer when a request is sent and again at
every arrival of bytes. The loop keeps its timers in a heap ordered by a Python-level comparison, and cancelled ones
stay there until they come up: at a few thousand requests a second that bookkeeping cost more than everything else
llmkit does for a request (about 40,000 instructions a request, measured), and a stream paid it again per chunk.

Here a wait only writes its deadline down; one timer, armed for the earliest deadline, cancels the tasks whose
deadline has passed, and the waiting code turns that cancellation into a timeout exactly as :func:`asyncio.timeout`
does (a cancellation that was not ours, or that came on top of ours, stays a cancellation).

Example:
    >>> import asyncio
    >>> async def main() -> str:
    ...     deadlines = ReadDeadlines(asyncio.get_running_loop())
    ...     waiting = deadlines.start(0.05)
    ...     try:
    ...         await asyncio.sleep(10)  # a server that never answers
    ...     except asyncio.CancelledError:
    ...         if deadlines.stop(waiting):
    ...             return "timed out"
    ...         raise
    ...     finally:
    ...         deadlines.stop(waiting)
    ...     return "answered"
    >>> asyncio.run(main())
    'timed out'
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

#: A deadline this close is due: the loop runs a timer that is due within its clock's resolution.
_RESOLUTION = time.get_clock_info("monotonic").resolution


class ReadDeadlines:
    """The read deadlines of one event loop's waits: :meth:`start` before a wait, :meth:`stop` after it, always
    (in a ``finally``); when ``stop`` says the deadline passed, the ``CancelledError`` the wait raised is a timeout.

    A task waits for one thing at a time, so a wait is known by its task."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # task -> (deadline, the cancellations asked for before its wait began, the seconds); the waits whose
        # deadline cancelled their task: task -> those cancellations
        self._waiting: dict[asyncio.Task[Any], tuple[float, int, float]] = {}
        self._expired: dict[asyncio.Task[Any], int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def start(self, seconds: float, *, begun: bool = True) -> asyncio.Task[Any]:
        """Watch the current task's wait for at most ``seconds``; what :meth:`stop` takes. With ``begun=False`` the
        seconds count from :meth:`begin` (called in the same task), not from now."""
        task = asyncio.current_task(self._loop)
        if task is None:
            raise RuntimeError("a read timeout is only kept for a wait inside an asyncio task")
        deadline = self._loop.time() + seconds if begun else math.inf
        self._waiting[task] = (deadline, task.cancelling(), seconds)
        if deadline < self._timer_at:
            self._arm(deadline)
        return task

    def begin(self) -> None:
        """Start counting the current task's wait that :meth:`start` registered with ``begun=False`` (if any)."""
        task = asyncio.current_task(self._loop)
        if task is None:
            return
        waiting = self._waiting.get(task)
        if waiting is not None and waiting[0] == math.inf:
            deadline = self._loop.time() + waiting[2]
            self._waiting[task] = (deadline, waiting[1], waiting[2])
            if deadline < self._timer_at:
                self._arm(deadline)

    def stop(self, task: asyncio.Task[Any]) -> bool:
        """End the task's wait; True when its deadline cancelled the task and nothing else did (raise the timeout
        then). Calling it again is harmless."""
        if self._waiting.pop(task, None) is not None:
            return False
        cancelling = self._expired.pop(task, None)
        # As asyncio.timeout: the cancellation we asked for is withdrawn; any other one stands.
        return cancelling is not None and task.uncancel() <= cancelling

    def close(self) -> None:
        """Drop the timer (the loop's pool is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(when, self._expire), when

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        due = self._loop.time() + _RESOLUTION
        earliest = math.inf
        for task, (deadline, cancelling, _) in list(self._waiting.items()):
            if deadline <= due:
                del self._waiting[task]
                self._expired[task] = cancelling
                task.cancel()
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._arm(earliest)
