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
Through Redis, each process sends its own first request alone, and its requests in flight count while it renews
its lease (:data:`LEASE`): a killed process's stop counting soon after, so a rerun is not held back by them.

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
import logging
import math
import threading
import time
import uuid
import weakref
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


# KEYS: spent, in flight (a hash: gate -> its requests in flight), priced, leases (a sorted set: gate -> when its
# lease ends). Amounts in nano-units (integers: exact, and INCRBY is atomic). A gate renews its lease whenever it
# reserves, and every third of it while it has requests in flight (_RENEW); the requests of a gate whose lease ended
# (its process was killed) stop counting.
_RESERVE = """
if redis.replicate_commands then redis.replicate_commands() end  -- Redis < 5: writes after TIME
local budget = tonumber(ARGV[1])
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent >= budget then return 0 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
for _, gate in ipairs(gone) do
  redis.call('HDEL', KEYS[2], gate)
  redis.call('ZREM', KEYS[4], gate)
end
local priced = tonumber(redis.call('GET', KEYS[3]) or '0')
if priced > 0 then
  local flying = 0
  for _, count in ipairs(redis.call('HVALS', KEYS[2])) do flying = flying + tonumber(count) end
  if spent + (flying + 1) * spent / priced > budget then return 0 end
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[2])
return 1
"""

# KEYS: as above. ARGV: the gate, the cost (or '' unknown). A gate that reserved nothing (no budget, or a count
# dropped when its lease lapsed) has no count to take back.
_SETTLE = """
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') > 0 then redis.call('HINCRBY', KEYS[2], ARGV[1], -1) end
if ARGV[2] ~= '' then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  redis.call('INCR', KEYS[3])
end
"""

# KEYS: leases. ARGV: the gate, its lease (s).
_RENEW = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(clock[1]) + tonumber(clock[2]) / 1000000 + tonumber(ARGV[2]), ARGV[1])
"""

#: Seconds a gate's requests in flight count without news from its process: it renews its lease every third of
#: that while it has requests in flight, so only a process that was killed (or stopped) lets it lapse.
LEASE = 120.0

_log = logging.getLogger(__name__)
_NANO = Decimal(1_000_000_000)  # amounts kept in nano-units in Redis (a cheap model's call is ~1e-6 USD)


def _renew_while_in_flight(gate_ref: weakref.ref[RedisGate]) -> None:
    """A gate's lease renewed every third of it while the gate has requests in flight (holding the gate only
    weakly: a dropped gate ends it). A renewal Redis refuses is logged and tried again at the next one."""
    while (gate := gate_ref()) is not None:
        interval = gate.lease / 3
        del gate
        time.sleep(interval)
        if (gate := gate_ref()) is None:
            return
        try:
            if not gate._renew():
                return
        except Exception as exc:  # logged, not raised: the job's own Redis calls raise the same fault
            _log.warning("llmkit batch: could not renew the lease of job %s in Redis: %s", gate.job, exc)
        del gate


class _Attempt:
    """One acquire run in a thread: what it got, and whether the task that asked gave up on it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wait: float | None = None
        self.abandoned = False


class RedisGate(Gate):
    """Limits shared through Redis (extra ``redis``): every process and machine of the job holds the same ones.

    ``job`` names the job in Redis (its counters live under ``llmkit:batch:<job>:``); a rerun of a job starts from
    what it had spent, so give a new job a new name, or call :meth:`reset`. Each gate's requests in flight count
    against the budget under a lease its process renews (every request it starts, and every third of the lease
    while any is in flight); those of a process that was killed stop counting ``lease`` seconds after its
    last news. (A process stopped for longer than the lease and then resumed counts its requests in flight too
    low until they end: the count never goes below zero.)"""

    def __init__(
        self,
        url: str,
        job: str,
        rpm: int | None = None,
        tpm: int | None = None,
        budget: Decimal | None = None,
        *,
        lease: float = LEASE,
    ) -> None:
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, got {lease}")
        self.url, self.job, self.lease = url, job, lease
        self._id = uuid.uuid4().hex
        # this gate's reservations in flight, and the thread renewing its lease while there are any
        self._here, self._here_lock = 0, threading.Lock()
        self._renewing = False
        super().__init__(rpm, tpm, budget)

    def _states(self, rpm_window: float, tpm_window: float) -> tuple[RouterState, RouterState]:
        from llmkit.router.state import RedisState

        rates = RedisState(self.url, namespace=f"batch:{self.job}:rpm", window_seconds=rpm_window)
        tokens = RedisState(self.url, namespace=f"batch:{self.job}:tpm", window_seconds=tpm_window)
        self._redis: Any = rates._redis
        self._keys = [f"llmkit:batch:{self.job}:{name}" for name in ("spent", "flying", "priced", "leases")]
        self._reserve_script = self._redis.register_script(_RESERVE)
        self._settle_script = self._redis.register_script(_SETTLE)
        self._renew_script = self._redis.register_script(_RENEW)
        return rates, tokens

    def _reserve(self) -> bool:
        assert self.budget is not None
        if not self._reserve_script(keys=self._keys, args=[int(self.budget * _NANO), self._id, self.lease]):
            return False
        with self._here_lock:
            self._here += 1
            start, self._renewing = not self._renewing, True
        if start:
            name = f"llmkit: renew the lease of batch job {self.job}"
            threading.Thread(target=_renew_while_in_flight, args=(weakref.ref(self),), name=name, daemon=True).start()
        return True

    def _settle(self, cost: Decimal | None) -> None:
        if self.budget is not None:
            with self._here_lock:
                self._here = max(self._here - 1, 0)
        self._settle_script(keys=self._keys, args=[self._id, "" if cost is None else int(cost * _NANO)])

    def _renew(self) -> bool:
        """Renew the lease if requests are in flight (False when none are: the renewing thread ends)."""
        with self._here_lock:
            if self._here == 0:
                self._renewing = False
                return False
        self._renew_script(keys=self._keys[3:], args=[self._id, self.lease])
        return True

    def spent(self) -> Decimal:
        return Decimal(int(self._redis.get(self._keys[0]) or 0)) / _NANO

    def reset(self) -> None:
        """Forget what the job spent (its rate windows expire by themselves)."""
        self._redis.delete(*self._keys, f"llmkit:batch:{self.job}:in-flight")  # the last: an older version's count

    # Redis calls block on the network: run them off the event loop.
    async def acquire(self) -> float:
        attempt = _Attempt()
        try:
            return await asyncio.to_thread(self._acquire_for, attempt)
        except asyncio.CancelledError:
            # Nobody will send the request this acquire lets go: its slots and reservation go back, here if the
            # thread already took them, else by the thread when it has.
            with attempt.lock:
                attempt.abandoned, taken = True, attempt.wait == 0.0
            if taken:
                threading.Thread(target=self._give_back, name="llmkit: give back a slot").start()
            raise

    def _acquire_for(self, attempt: _Attempt) -> float:
        wait = self.try_acquire()
        with attempt.lock:
            attempt.wait = wait
            if not attempt.abandoned:
                return wait
        if wait == 0.0:
            self._give_back()
        return wait

    def _give_back(self) -> None:
        self.finish(0, None, answered=False)

    async def release(self, tokens: int, cost: Decimal | None, answered: bool = True) -> None:
        await asyncio.to_thread(self.finish, tokens, cost, answered)

    async def aspent(self) -> Decimal:
        return await asyncio.to_thread(self.spent)
