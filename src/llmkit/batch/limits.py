"""A job's shared limits: requests and tokens per minute, and the budget, for every worker of the job at once.

Rates use the router's state (:class:`~llmkit.router.state.LocalState`, or
:class:`~llmkit.router.state.RedisState` so processes and machines share them) with short windows: ``rpm`` is
cut into windows of ``n = max(1, rpm // 60)`` requests (see :func:`rpm_window`), so requests are spread over the
minute and no 60 s span (wherever it starts) holds more than ``rpm`` of them. ``tpm`` is counted in windows
of 6 s holding a tenth of it, from the tokens each answer reports.

The budget is checked before each request against what was spent plus what the requests in flight are expected to
cost (each reserves the job's average cost per request so far); a request that would pass it is not sent. So a job
stops near its budget rather than after it; it can still pass it by what the requests in flight cost above average.

Example:
    >>> import asyncio
    >>> from decimal import Decimal
    >>> gate = LocalGate(rpm=120, budget=Decimal("0.01"))
    >>> asyncio.run(gate.acquire(Decimal("0.004")))
    0.0
    >>> asyncio.run(gate.release(Decimal("0.004"), tokens=10, cost=Decimal("0.009")))
    >>> asyncio.run(gate.acquire(Decimal("0.004"))) is BUDGET_REACHED
    True
"""

from __future__ import annotations

import asyncio
import math
import threading
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any, Final, Protocol

from llmkit.router.state import LocalState, RouterState

#: What :meth:`Gate.acquire` returns when the next request would pass the budget.
BUDGET_REACHED: Final = math.inf

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

    async def acquire(self, estimate: Decimal = ...) -> float:
        """0.0 when a request may go now, else seconds to wait, or :data:`BUDGET_REACHED`."""

    async def release(self, estimate: Decimal, tokens: int, cost: Decimal | None) -> None:
        """A request ended: its tokens and cost."""


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

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return bool(self.rpm or self.tpm or self.budget is not None)

    @abstractmethod
    def _states(self, rpm_window: float, tpm_window: float) -> tuple[RouterState, RouterState]:
        """The router states counting requests and tokens, with those window lengths."""

    @abstractmethod
    def _reserve(self, estimate: Decimal) -> bool:
        """Reserve ``estimate`` of the budget unless spent + reserved + estimate passes it."""

    @abstractmethod
    def _settle(self, estimate: Decimal, cost: Decimal) -> None:
        """Free a reservation and add what the request really cost."""

    @abstractmethod
    def spent(self) -> Decimal:
        """What the job's requests have cost so far (known costs)."""

    def try_acquire(self, estimate: Decimal = Decimal(0)) -> float:
        """0.0 when a request may go now (its slot is taken), else seconds to wait before asking again, or
        :data:`BUDGET_REACHED`."""
        if self.rpm and not self._rpm_state.try_acquire(_RPM_NAME, rpm=self._per_window, tpm=None, max_parallel=None):
            return self._rpm_state.seconds_to_next_window() + 0.001
        if self.tpm and not self._tpm_state.try_acquire(
            _TPM_NAME, rpm=None, tpm=self._tokens_per_window, max_parallel=None
        ):
            self._free_rate_slots(rpm_only=True)
            return self._tpm_state.seconds_to_next_window() + 0.001
        if self.budget is not None and not self._reserve(estimate):
            self._free_rate_slots()
            return BUDGET_REACHED
        return 0.0

    def _free_rate_slots(self, rpm_only: bool = False) -> None:
        # try_acquire counts a call in flight; a refused request ends here (its request count stays: it is spent)
        if self.rpm:
            self._rpm_state.release(_RPM_NAME)
        if self.tpm and not rpm_only:
            self._tpm_state.release(_TPM_NAME)

    def finish(self, estimate: Decimal, tokens: int, cost: Decimal | None) -> None:
        """A request ended: count its tokens and its cost."""
        self._free_rate_slots()
        if self.tpm and tokens:
            self._tpm_state.add_tokens(_TPM_NAME, tokens)
        if self.budget is not None:
            self._settle(estimate, cost or Decimal(0))
        elif cost:
            self._settle(Decimal(0), cost)

    async def acquire(self, estimate: Decimal = Decimal(0)) -> float:
        """Async :meth:`try_acquire`."""
        return self.try_acquire(estimate)

    async def release(self, estimate: Decimal, tokens: int, cost: Decimal | None) -> None:
        """Async :meth:`finish`."""
        self.finish(estimate, tokens, cost)

    async def aspent(self) -> Decimal:
        """Async :meth:`spent`."""
        return self.spent()


class LocalGate(Gate):
    """Limits for the workers of one process."""

    def _states(self, rpm_window: float, tpm_window: float) -> tuple[RouterState, RouterState]:
        self._lock = threading.Lock()
        self._spent = Decimal(0)
        self._reserved = Decimal(0)
        return LocalState(window_seconds=rpm_window), LocalState(window_seconds=tpm_window)

    def _reserve(self, estimate: Decimal) -> bool:
        with self._lock:
            assert self.budget is not None
            # the first request always goes when nothing is spent: a budget of 0 sends nothing
            if self._spent + self._reserved + estimate > self.budget or self._spent >= self.budget:
                return False
            self._reserved += estimate
            return True

    def _settle(self, estimate: Decimal, cost: Decimal) -> None:
        with self._lock:
            self._reserved -= estimate
            self._spent += cost

    def spent(self) -> Decimal:
        return self._spent


# KEYS: spent, reserved. ARGV: budget, estimate. Amounts in nano-units (integers: exact, and INCRBY is atomic).
_RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
if spent >= tonumber(ARGV[1]) or spent + reserved + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return 0 end
redis.call('INCRBY', KEYS[2], ARGV[2])
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
        self._keys = [f"llmkit:batch:{self.job}:spent", f"llmkit:batch:{self.job}:reserved"]
        self._reserve_script = self._redis.register_script(_RESERVE)
        return rates, tokens

    def _reserve(self, estimate: Decimal) -> bool:
        assert self.budget is not None
        args = [int(self.budget * _NANO), int(estimate * _NANO)]
        return bool(self._reserve_script(keys=self._keys, args=args))

    def _settle(self, estimate: Decimal, cost: Decimal) -> None:
        pipe = self._redis.pipeline()
        pipe.decrby(self._keys[1], int(estimate * _NANO))
        pipe.incrby(self._keys[0], int(cost * _NANO))
        pipe.execute()

    def spent(self) -> Decimal:
        return Decimal(int(self._redis.get(self._keys[0]) or 0)) / _NANO

    def reset(self) -> None:
        """Forget what the job spent (its rate windows expire by themselves)."""
        self._redis.delete(*self._keys)

    # Redis calls block on the network: run them off the event loop.
    async def acquire(self, estimate: Decimal = Decimal(0)) -> float:
        return await asyncio.to_thread(self.try_acquire, estimate)

    async def release(self, estimate: Decimal, tokens: int, cost: Decimal | None) -> None:
        await asyncio.to_thread(self.finish, estimate, tokens, cost)

    async def aspent(self) -> Decimal:
        return await asyncio.to_thread(self.spent)
