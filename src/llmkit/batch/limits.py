"""A job's shared limits: requests and tokens per minute, and the budget, for every worker of the job at once.

Rates use the router's state (:class:`~llmkit.router.state.LocalState`, or
:class:`~llmkit.router.state.RedisState` so processes and machines share them) with short windows: ``rpm`` is
cut into windows of ``n = max(1, rpm // 60)`` requests (see :func:`rpm_window`), so requests are spread over the
minute and no 60 s span (wherever it starts) holds more than ``rpm`` of them. ``tpm`` is counted in windows
of 6 s holding a tenth of it, from the tokens each answer reports.

The budget is checked before each request against what was spent plus what the requests in flight are expected to
cost: each reserves the job's average cost per priced request so far, worked out by the gate at that moment (so every
worker of a job reserves the same figure, however few answers it has seen itself). Until an answer has come,
nothing can be estimated, so requests go one at a time (the others wait; a failed one is followed by the next
alone): a job of 256 in flight does not send 256 requests before it knows what one costs. A request that would pass
the budget is not sent. So a job stops at its budget rather than after it; it can still pass it by what the
requests in flight cost above the average. Answers nothing prices are not counted (a budget cannot hold them).
Through Redis, each process sends its own first request alone.

Example:
    >>> import asyncio
    >>> from decimal import Decimal
    >>> gate = LocalGate(budget=Decimal("0.02"))
    >>> asyncio.run(gate.acquire()), asyncio.run(gate.acquire()) > 0  # the first goes alone, the next waits for it
    (0.0, True)
    >>> asyncio.run(gate.release(tokens=10, cost=Decimal("0.009")))
    >>> asyncio.run(gate.acquire())  # 0.009 spent + 0.009 reserved
    0.0
    >>> asyncio.run(gate.acquire()) is BUDGET_REACHED  # 0.009 + 2 x 0.009 > 0.02
    True
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any, Final, Protocol

from llmkit.router.state import LocalState, RouterState

#: What :meth:`Gate.acquire` returns when the next request would pass the budget.
BUDGET_REACHED: Final = math.inf
#: The shortest wait before asking again while a budgeted job's first request is out alone (the wait grows to 1 s).
FIRST_COST_WAIT: Final = 0.02

_RPM_NAME, _TPM_NAME = "batch:rpm", "batch:tpm"
_TPM_SLICES = 10


def rpm_window(rpm: int) -> tuple[int, float]:
    """``(requests per window, window seconds)`` for a requests-per-minute limit: ``n = max(1, rpm // 60)`` requests
    in each of ``m = rpm // n - 1`` windows a minute. A span of 60 s touches at most ``m + 1`` windows, so it holds
    at most ``n (m + 1) <= rpm`` requests (one a minute is the exception: two windows can share a minute), and the
    job gets about ``1 - 1/m`` of its rate (98% from 60 rpm up).

    >>> rpm_window(600)
    (10, 1.0169491525423728)
    """
    per_window = max(1, rpm // 60)
    return per_window, 60.0 / max(rpm // per_window - 1, 1)


class Limits(Protocol):
    """What the engine needs of a job's limits (a :class:`Gate`, or a proxy to one in another process)."""

    @property
    def active(self) -> bool:
        """Whether any limit is set (else the engine skips the gate)."""

    async def acquire(self) -> float:
        """0.0 when a request may go now, else seconds to wait, or :data:`BUDGET_REACHED`."""

    async def release(self, tokens: int, cost: Decimal | None, answered: bool = True) -> None:
        """A request that :meth:`acquire` let go ended: its tokens and cost (None: unknown); ``answered``: an answer
        came (else it failed)."""


class Gate(ABC):
    """The limits every request of a job passes: ``acquire`` before it, ``release`` after it."""

    def __init__(self, rpm: int | None = None, tpm: int | None = None, budget: Decimal | None = None) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no limit), got {value}")
        if budget is not None and budget < 0:
            raise ValueError(f"budget must not be negative, got {budget}")
        self.rpm, self.tpm, self.budget = rpm, tpm, budget
        self._per_window, window = rpm_window(rpm) if rpm else (0, 60.0)
        self._tokens_per_window = max(1, tpm // _TPM_SLICES) if tpm else 0
        self._rpm_state, self._tpm_state = self._states(window, 60.0 / _TPM_SLICES)
        # Until an answer has come (priced or not), a budgeted job sends one request at a time: _first_out says
        # when it went out (None: none is out). A lock, since RedisGate asks from several threads at once.
        self._answered = False
        self._first_out: float | None = None
        self._first_lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return bool(self.rpm or self.tpm or self.budget is not None)

    @abstractmethod
    def _states(self, rpm_window: float, tpm_window: float) -> tuple[RouterState, RouterState]:
        """The router states counting requests and tokens, with those window lengths."""

    @abstractmethod
    def _reserve(self) -> bool:
        """Count one more request in flight unless spent + (in flight + 1) x the average cost passes the budget."""

    @abstractmethod
    def _settle(self, cost: Decimal | None) -> None:
        """Add what a request cost (None: unknown, not in the average); with a budget, it leaves the in-flight count."""

    @abstractmethod
    def spent(self) -> Decimal:
        """What the job's requests have cost so far (known costs)."""

    def try_acquire(self) -> float:
        """0.0 when a request may go now (its slot is taken), else seconds to wait before asking again, or
        :data:`BUDGET_REACHED`."""
        if self.budget is None or self._answered:
            return self._take_slots()
        with self._first_lock:  # nothing known yet: one request at a time
            if self._answered:
                return self._take_slots()
            if self._first_out is not None:
                # checked before the rate slots (a wait must not use up the minute's requests); asked again sooner
                # at first, then up to once a second, so a slow first answer is not polled thousands of times
                return min(1.0, max(FIRST_COST_WAIT, (time.monotonic() - self._first_out) / 4))
            wait = self._take_slots()
            if wait == 0.0:
                self._first_out = time.monotonic()
            return wait

    def _take_slots(self) -> float:
        if self.rpm and not self._rpm_state.try_acquire(_RPM_NAME, rpm=self._per_window, tpm=None, max_parallel=None):
            return self._rpm_state.seconds_to_next_window() + 0.001
        if self.tpm and not self._tpm_state.try_acquire(
            _TPM_NAME, rpm=None, tpm=self._tokens_per_window, max_parallel=None
        ):
            self._free_rate_slots(rpm_only=True)
            return self._tpm_state.seconds_to_next_window() + 0.001
        if self.budget is not None and not self._reserve():
            self._free_rate_slots()
            return BUDGET_REACHED
        return 0.0

    def _free_rate_slots(self, rpm_only: bool = False) -> None:
        # try_acquire counts a call in flight; a refused request ends here (its request count stays: it is spent)
        if self.rpm:
            self._rpm_state.release(_RPM_NAME)
        if self.tpm and not rpm_only:
            self._tpm_state.release(_TPM_NAME)

    def finish(self, tokens: int, cost: Decimal | None, answered: bool = True) -> None:
        """A request that :meth:`try_acquire` let go ended: count its tokens and its cost (None: unknown).
        ``answered``: an answer came (a failed request tells nothing of what one costs)."""
        self._free_rate_slots()
        if answered:
            self._answered = True
        self._first_out = None
        if self.tpm and tokens:
            self._tpm_state.add_tokens(_TPM_NAME, tokens)
        if self.budget is not None or cost is not None:
            self._settle(cost)

    async def acquire(self) -> float:
        """Async :meth:`try_acquire`."""
        return self.try_acquire()

    async def release(self, tokens: int, cost: Decimal | None, answered: bool = True) -> None:
        """Async :meth:`finish`."""
        self.finish(tokens, cost, answered)

    async def aspent(self) -> Decimal:
        """Async :meth:`spent`."""
        return self.spent()


class LocalGate(Gate):
    """Limits for the workers of one process."""

    def _states(self, rpm_window: float, tpm_window: float) -> tuple[RouterState, RouterState]:
        self._lock = threading.Lock()
        self._spent = Decimal(0)
        self._priced = 0  # requests whose cost is known (the average's count)
        self._in_flight = 0
        return LocalState(window_seconds=rpm_window), LocalState(window_seconds=tpm_window)

    def _reserve(self) -> bool:
        with self._lock:
            assert self.budget is not None
            spent = self._spent
            # a budget of 0 sends nothing
            if spent >= self.budget:
                return False
            if self._priced and spent + (self._in_flight + 1) * spent / self._priced > self.budget:
                return False
            self._in_flight += 1
            return True

    def _settle(self, cost: Decimal | None) -> None:
        with self._lock:
            if self.budget is not None:
                self._in_flight -= 1
            if cost is not None:
                self._spent += cost
                self._priced += 1

    def spent(self) -> Decimal:
        return self._spent


# KEYS: spent, in flight, priced. ARGV: budget. Amounts in nano-units (integers: exact, and INCRBY is atomic).
_RESERVE = """
local budget = tonumber(ARGV[1])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent >= budget then return 0 end
local priced = tonumber(redis.call('GET', KEYS[3]) or '0')
if priced > 0 then
  local flying = tonumber(redis.call('GET', KEYS[2]) or '0')
  if spent + (flying + 1) * spent / priced > budget then return 0 end
end
redis.call('INCR', KEYS[2])
return 1
"""

_NANO = Decimal(1_000_000_000)  # amounts kept in nano-units in Redis (a cheap model's call is ~1e-6 USD)


class RedisGate(Gate):
    """Limits shared through Redis (extra ``redis``): every process and machine of the job holds the same ones.

    ``job`` names the job in Redis (its counters live under ``llmkit:batch:<job>:``); a rerun of a job starts from
    what it had spent, so give a new job a new name, or call :meth:`reset`."""

    def __init__(
        self,
        url: str,
        job: str,
        rpm: int | None = None,
        tpm: int | None = None,
        budget: Decimal | None = None,
    ) -> None:
        self.url, self.job = url, job
        super().__init__(rpm, tpm, budget)

    def _states(self, rpm_window: float, tpm_window: float) -> tuple[RouterState, RouterState]:
        from llmkit.router.state import RedisState

        rates = RedisState(self.url, namespace=f"batch:{self.job}:rpm", window_seconds=rpm_window)
        tokens = RedisState(self.url, namespace=f"batch:{self.job}:tpm", window_seconds=tpm_window)
        self._redis: Any = rates._redis
        self._keys = [f"llmkit:batch:{self.job}:{name}" for name in ("spent", "in-flight", "priced")]
        self._reserve_script = self._redis.register_script(_RESERVE)
        return rates, tokens

    def _reserve(self) -> bool:
        assert self.budget is not None
        return bool(self._reserve_script(keys=self._keys, args=[int(self.budget * _NANO)]))

    def _settle(self, cost: Decimal | None) -> None:
        pipe = self._redis.pipeline()
        if self.budget is not None:
            pipe.decr(self._keys[1])
        if cost is not None:
            pipe.incrby(self._keys[0], int(cost * _NANO))
            pipe.incr(self._keys[2])
        pipe.execute()

    def spent(self) -> Decimal:
        return Decimal(int(self._redis.get(self._keys[0]) or 0)) / _NANO

    def reset(self) -> None:
        """Forget what the job spent (its rate windows expire by themselves)."""
        self._redis.delete(*self._keys)

    # Redis calls block on the network: run them off the event loop.
    async def acquire(self) -> float:
        return await asyncio.to_thread(self.try_acquire)

    async def release(self, tokens: int, cost: Decimal | None, answered: bool = True) -> None:
        await asyncio.to_thread(self.finish, tokens, cost, answered)

    async def aspent(self) -> Decimal:
        return await asyncio.to_thread(self.spent)
