"""The job's limits: rpm windows that never let 60 s hold more than rpm, the budget, shared through Redis."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from llmkit.batch.limits import _RPM_NAME, BUDGET_REACHED, FIRST_COST_WAIT, LocalGate, RedisGate, rpm_window

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rpm", [1, 2, 30, 59, 60, 61, 90, 100, 600, 1000, 3600, 10_007])
def test_rpm_windows_hold_at_most_rpm_in_any_60_seconds(rpm: int) -> None:
    per_window, window = rpm_window(rpm)
    # fixed windows: any span of L seconds touches at most ceil(L / window) + 1 of them
    worst = per_window * (math.ceil(60 / window - 1e-9) + 1)
    assert worst <= rpm or rpm == 1  # one request a minute: two windows can touch one minute
    assert per_window * 60 / window >= rpm * 0.9 or rpm < 10  # and the job still gets close to its rate


def test_local_gate_counts_requests_per_window() -> None:
    gate = LocalGate(rpm=120)  # 2 requests per ~1.03 s window
    assert gate.try_acquire() == 0.0
    assert gate.try_acquire() == 0.0
    wait = gate.try_acquire()
    assert 0 < wait <= 1.1


def test_tpm_is_counted_from_the_tokens_answers_report() -> None:
    gate = LocalGate(tpm=600)  # 60 tokens per 6 s window
    assert gate.try_acquire() == 0.0
    gate.finish(tokens=60, cost=None)
    assert gate.try_acquire() > 0


def test_budget_sends_the_first_request_alone_then_reserves_the_average_for_each_in_flight() -> None:
    gate = LocalGate(budget=Decimal("1.0"))
    assert gate.try_acquire() == 0.0
    assert [gate.try_acquire() for _ in range(3)] == [FIRST_COST_WAIT] * 3  # nothing is known before it finishes
    gate.finish(tokens=0, cost=Decimal("0.2"))
    # 0.2 spent and 0.2 reserved for each request in flight: four more fit in 1.0, a fifth would pass it
    assert [gate.try_acquire() for _ in range(5)] == [0.0, 0.0, 0.0, 0.0, BUDGET_REACHED]
    gate.finish(tokens=0, cost=Decimal("0.1"))  # cheaper than the average: room for one more
    assert gate.spent() == Decimal("0.3")
    assert gate.try_acquire() == 0.0  # 0.3 + 4 x 0.15 = 0.9
    assert gate.try_acquire() == BUDGET_REACHED
    assert LocalGate(budget=Decimal(0)).try_acquire() == BUDGET_REACHED


def test_until_an_answer_comes_requests_go_one_at_a_time_and_waits_take_no_rate_slot() -> None:
    gate = LocalGate(rpm=120, budget=Decimal("1.0"))  # 2 requests per ~1 s window
    assert gate.try_acquire() == 0.0
    assert all(gate.try_acquire() == FIRST_COST_WAIT for _ in range(10))
    gate.finish(tokens=0, cost=None, answered=False)  # it failed: still nothing known, the next goes alone
    assert gate.try_acquire() == 0.0  # the window's second request (the waits took none)
    assert gate.try_acquire() == FIRST_COST_WAIT
    gate.finish(tokens=0, cost=None)  # an answer nothing priced: every request may go, none is reserved
    assert gate.spent() == 0
    free = LocalGate(budget=Decimal("1.0"))
    free.try_acquire()
    free.finish(tokens=0, cost=None)
    assert [free.try_acquire() for _ in range(5)] == [0.0] * 5


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="rpm"):
        LocalGate(rpm=0)
    with pytest.raises(ValueError, match="budget"):
        LocalGate(budget=Decimal(-1))


def test_redis_gate_is_shared_by_every_process_of_the_job(redis_url: str) -> None:
    rates = [RedisGate(redis_url, "rated-job", rpm=120) for _ in range(2)]
    assert [rates[0].try_acquire(), rates[1].try_acquire()] == [0.0, 0.0]
    assert rates[0].try_acquire() > 0  # two requests per window, taken by two gates
    first = RedisGate(redis_url, "shared-job", budget=Decimal("0.1"))
    second = RedisGate(redis_url, "shared-job", budget=Decimal("0.1"))
    first.reset()
    assert first.try_acquire() == 0.0  # each process's first request goes alone
    assert second.try_acquire() == 0.0
    assert first.try_acquire() == FIRST_COST_WAIT
    asyncio.run(first.release(tokens=5, cost=Decimal("0.02")))
    assert second.spent() == Decimal("0.02")
    assert second.try_acquire() == FIRST_COST_WAIT  # its own first request is still out
    # the average (0.02) and the requests in flight are the job's: 0.02 spent + 0.02 x (2, 3, 4, then 5 in flight)
    assert [asyncio.run(first.acquire()) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert math.isinf(asyncio.run(first.acquire()))
    first.reset()


def _flying(gate: RedisGate) -> int:
    return sum(int(count) for count in gate._redis.hvals(gate._keys[1]))


# A process of a job: its first request answered (0.1 USD: the job's average), then N more sent and never answered,
# until told on stdin to finish them.
_WORKER = """
import sys
from decimal import Decimal
from llmkit.batch.limits import RedisGate

url, job, lease, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
gate = RedisGate(url, job, budget=Decimal("1.0"), lease=lease)
assert gate.try_acquire() == 0.0
gate.finish(tokens=5, cost=Decimal("0.1"))
assert [gate.try_acquire() for _ in range(n)] == [0.0] * n
print("sent", flush=True)
sys.stdin.readline()
for _ in range(n):
    gate.finish(tokens=5, cost=Decimal("0.1"))
print("finished", flush=True)
"""


def _job_process(redis_url: str, job: str, lease: float, in_flight: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER, redis_url, job, str(lease), str(in_flight)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "sent"
    return process


def test_a_killed_processs_requests_in_flight_stop_counting_after_its_lease(redis_url: str) -> None:
    rerun = RedisGate(redis_url, "killed-job", budget=Decimal("1.0"), lease=3.0)
    rerun.reset()
    # 0.1 spent + 0.1 x (1 ... 9 in flight) fits a budget of 1.0: the process sends 9, then is killed
    killed = _job_process(redis_url, "killed-job", lease=2.0, in_flight=9)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    assert rerun.try_acquire() is BUDGET_REACHED  # its 9 still count while their lease runs
    time.sleep(2.5)
    assert rerun.try_acquire() == 0.0  # then they are gone: only the rerun's own request is in flight
    assert _flying(rerun) == 1
    rerun.finish(tokens=5, cost=Decimal("0.1"))
    assert (_flying(rerun), rerun.spent()) == (0, Decimal("0.2"))
    rerun.reset()


def test_a_living_process_renews_its_lease_while_its_requests_are_in_flight(redis_url: str) -> None:
    gate = RedisGate(redis_url, "renewed-job", budget=Decimal("1.0"), lease=0.6)
    gate.reset()
    assert gate.try_acquire() == 0.0
    gate.finish(tokens=1, cost=Decimal("0.1"))
    assert [gate.try_acquire() for _ in range(3)] == [0.0] * 3  # long requests: no news for 3 leases
    time.sleep(1.8)
    other = RedisGate(redis_url, "renewed-job", budget=Decimal("1.0"), lease=0.6)
    assert other.try_acquire() == 0.0
    assert _flying(other) == 4  # the first process's 3 still count
    for _ in range(3):
        gate.finish(tokens=1, cost=Decimal("0.1"))
    assert (_flying(other), other.spent()) == (1, Decimal("0.4"))
    deadline = time.monotonic() + 5
    while gate._renewing and time.monotonic() < deadline:  # with nothing in flight its renewing thread ends
        time.sleep(0.05)
    assert not gate._renewing
    gate.reset()


def test_a_process_stopped_past_its_lease_takes_back_no_count_it_lost(redis_url: str) -> None:
    other = RedisGate(redis_url, "stopped-job", budget=Decimal("1.0"), lease=3.0)
    other.reset()
    stopped = _job_process(redis_url, "stopped-job", lease=1.0, in_flight=2)
    stopped.send_signal(signal.SIGSTOP)  # no renewal while stopped: its lease lapses, its count is dropped
    time.sleep(1.5)
    assert other.try_acquire() == 0.0
    assert _flying(other) == 1
    stopped.send_signal(signal.SIGCONT)
    assert stopped.stdin is not None
    assert stopped.stdout is not None
    stopped.stdin.write("finish\n")
    stopped.stdin.flush()
    assert stopped.stdout.readline().strip() == "finished"
    assert stopped.wait(10) == 0
    assert (_flying(other), other.spent()) == (1, Decimal("0.3"))  # not -1: the other's request still counts
    other.reset()


def test_an_acquire_cancelled_while_redis_answers_gives_its_reservation_back(redis_url: str) -> None:
    gate = RedisGate(redis_url, "cancelled-job", rpm=6000, budget=Decimal("1.0"))
    gate.reset()
    assert gate.try_acquire() == 0.0
    gate.finish(tokens=1, cost=Decimal("0.1"))
    redis = pytest.importorskip("redis")
    pauser = redis.Redis.from_url(redis_url)

    async def cancelled_acquire() -> None:
        pauser.execute_command("CLIENT", "PAUSE", "300", "WRITE")  # the reservation's script waits for Redis
        task = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_acquire())
    deadline = time.monotonic() + 5
    while _flying(gate) and time.monotonic() < deadline:  # the thread finishes its reservation, then gives it back
        time.sleep(0.05)
    assert _flying(gate) == 0
    assert gate._rpm_state.in_flight(_RPM_NAME) == 0  # the rate slot it took is back too
    gate.reset()
