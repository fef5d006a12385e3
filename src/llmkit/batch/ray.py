"""A batch job on a Ray cluster (extra ``ray``): the same output and resume semantics as on one machine.

The driver (the process that ran ``llmkit batch --ray``) keeps everything that makes a job crash-safe: it reads the
input, skips what the output already holds, and is the one writer. It reads only each line's ``custom_id`` (done
lines and repeated ids are settled there, as in local mode); the workers parse the lines, so a raw line is what
crosses to them (it pickles in a fraction of the time of its parsed messages), and an encoded record with its counts
is what comes back. So the output needs no shared filesystem, and a killed driver loses only the lines in flight.

Workers pull work as local mode's do: each Ray actor runs its own llmkit :class:`~llmkit.batch.runner.Engine` (its
own LLM and connection pool) with ``concurrency / workers`` loops, each taking the next line handed over; one driver
loop per worker takes the next input lines itself and keeps that many in flight there plus half as many waiting, and
each :meth:`Worker.exchange` returns the records done meanwhile (waiting up to 20 ms to gather a batch: a Ray call
costs the driver ~0.1 ms of CPU). So a slow request (a retry's backoff) holds back no other record, which a chunk of
requests answered as one call does: measured on one 2-core machine (a local Ray cluster of 2 CPUs, driver, workers
and server sharing the cores), with 1 attempt in 11 a 500 retried after the engine's backoff, 1,500 requests at 64
in flight went through chunks at 81-106 requests/s and through this loop at 157-188 (local mode: 254-369); against
the canned server (no retries, 3,000 at 256 in flight) both ran at 570-790 requests/s, 0.4x local mode on the same
cores, the driver spending ~50 us of CPU per request (it was ~120 us when it parsed the lines and sent the parsed
requests). Ray pays off with more machines, not on one.

Limits and the budget are global: with ``redis_url`` every worker uses the job's Redis counters; otherwise one small
Ray actor holds the job's :class:`~llmkit.batch.limits.LocalGate`, and every worker asks it before each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from llmkit.batch.input import BadLine, parse_line, read_lines
from llmkit.batch.limits import Gate, LocalGate, RedisGate
from llmkit.batch.output import encode
from llmkit.batch.runner import Engine, EngineOptions, Job, Tally, bad_line_record, run_all, tally
from llmkit.errors import missing_extra
from llmkit.usage.cost import price_overrides, set_prices

#: How long a worker that has an answer waits for a batch of them before it returns what it has (fewer, fuller
#: calls: a Ray call costs the driver ~0.1 ms of CPU).
_LINGER = 0.02

#: A worker's answer to one line: its record encoded, with its counts; None when the budget stopped it unsent.
Answer = tuple[bytes, Tally] | None


class GateActor:
    """The job's limits in one Ray actor (its methods run one at a time: each decision is atomic)."""

    def __init__(self, rpm: int | None, tpm: int | None, budget: Decimal | None) -> None:
        self.gate = LocalGate(rpm=rpm, tpm=tpm, budget=budget)

    def try_acquire(self) -> float:
        return self.gate.try_acquire()

    def finish(self, tokens: int, cost: Decimal | None, answered: bool) -> None:
        self.gate.finish(tokens, cost, answered)


class ActorGate:
    """A worker's view of the :class:`GateActor` (the engine's :class:`~llmkit.batch.limits.Limits`)."""

    active = True

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def acquire(self) -> float:
        wait: float = await self.actor.try_acquire.remote()
        return wait

    async def release(self, tokens: int, cost: Decimal | None, answered: bool = True) -> None:
        await self.actor.finish.remote(tokens, cost, answered)


class Worker:
    """One Ray actor: an engine whose ``concurrency`` loops each take the next line the driver has handed over (as
    local mode's workers each take the next input line); :meth:`exchange` hands lines over and returns what is done."""

    def __init__(
        self, llm: Any, gate: Any, options: EngineOptions, concurrency: int, prices: list[Any] | None = None
    ) -> None:
        if prices:  # the driver's price overrides (set_price, load_prices): records are priced as in local mode
            set_prices(prices)
        if isinstance(gate, tuple):  # ("redis", url, job, rpm, tpm, budget, lease): each worker its own connection
            _, url, job, rpm, tpm, budget, lease = gate
            gate = RedisGate(url, job, rpm=rpm, tpm=tpm, budget=budget, lease=lease)
        elif gate is None:
            gate = LocalGate()
        else:
            gate = ActorGate(gate)
        self.engine = Engine(llm, gate, options)
        self.concurrency = concurrency
        self._pending: deque[tuple[int, str | bytes]] = deque()
        self._done: list[Answer] = []
        self._unanswered = 0  # lines taken and not yet returned
        self._failure: BaseException | None = None
        self._more = asyncio.Event()  # set while lines are pending (an Event binds to the loop that first waits)
        self._answered = asyncio.Event()  # set while answers wait in _done (or a loop failed)
        self._want = 0  # answers that end exchange's linger (0: not lingering)
        self._full = asyncio.Event()  # set when _want answers are done (or a loop failed)
        self._loops: list[asyncio.Task[None]] = []

    async def exchange(self, lines: list[tuple[int, str | bytes]], batch: int) -> list[Answer]:
        """Take ``lines`` to answer; return the answers done since the last call, at least one while any line is
        unanswered (having one, it waits up to 20 ms for ``batch`` of them, so that one call carries many)."""
        if not self._loops:
            await self.engine.warm_up()
            self._loops = [asyncio.create_task(self._loop()) for _ in range(self.concurrency)]
        if lines:
            self._pending.extend(lines)
            self._unanswered += len(lines)
            self._more.set()
        if not self._done and self._unanswered:
            await self._answered.wait()
        want = min(batch, self._unanswered)
        if self._failure is None and len(self._done) < want:
            self._want = want
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), _LINGER)
            self._want = 0
        if self._failure is not None:
            raise self._failure
        done, self._done = self._done, []
        self._unanswered -= len(done)
        self._answered.clear()
        return done

    async def _loop(self) -> None:
        engine, pending, more, answered = self.engine, self._pending, self._more, self._answered
        while True:
            if not pending:
                more.clear()
                await more.wait()
                continue
            number, text = pending.popleft()
            try:
                item = parse_line(text, number)
                record = bad_line_record(item) if isinstance(item, BadLine) else await engine.process(item)
            except BaseException as exc:  # not a line's error (those are records): the job's, raised to the driver
                self._failure = exc
                answered.set()
                self._full.set()
                raise
            self._done.append(None if record is None else (encode(record), tally(record)))
            answered.set()
            if self._want and len(self._done) >= self._want:
                self._full.set()


def _gate_for_workers(ray: Any, gate: Gate) -> Any:
    if not gate.active:
        return None
    if isinstance(gate, RedisGate):
        return ("redis", gate.url, gate.job, gate.rpm, gate.tpm, gate.budget, gate.lease)
    return ray.remote(num_cpus=0)(GateActor).remote(gate.rpm, gate.tpm, gate.budget)


async def run_on_ray(
    input: str | Path | Iterable[Any],
    job: Job,
    llm: Any,
    gate: Gate,
    options: EngineOptions,
    concurrency: int,
    address: str | None,
    workers: int | None,
    redis_url: str | None,
) -> None:
    """Run ``job`` over Ray actors (``ray.init(address)`` unless Ray is initialised already)."""
    try:
        import ray
    except ImportError as exc:
        raise missing_extra("ray", "ray") from exc
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False)
    try:
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        count = workers or max(1, min(int(resources.get("CPU", 1)), concurrency))
        per_worker = max(1, math.ceil(concurrency / count))
        shared = _gate_for_workers(ray, gate)
        actor = ray.remote(num_cpus=1)(Worker)
        prices = price_overrides()
        pool = [actor.remote(llm, shared, options, per_worker, prices) for _ in range(count)]
        await _dispatch(input, job, pool, per_worker)
    finally:
        if started:
            ray.shutdown()


async def _dispatch(input: str | Path | Iterable[Any], job: Job, pool: list[Any], per_worker: int) -> None:
    # One driver loop per worker, each taking the next input lines itself (no queue, as in local mode): it keeps
    # ``per_worker`` lines in flight at its worker plus ``batch`` waiting there, so a worker never waits for the
    # driver, and each exchange returns the records done meanwhile (a slow request holds back no other's record).
    batch = max(1, math.ceil(per_worker / 2))
    lines = read_lines(input)
    stop = False

    async def drive(worker: Any) -> None:
        nonlocal stop
        unanswered = passed = 0
        while True:
            sending: list[tuple[int, str | bytes]] = []
            want = per_worker + batch - unanswered
            if not stop and want > 0:
                # The driver reads only each line's custom_id (to skip done lines and repeated ids); the worker
                # parses the request, and a raw line pickles in a fraction of the time of its parsed messages.
                for number, text in lines:
                    if stop:  # the budget, reached while this loop let the answers in
                        break
                    if job.admit_line(number, text):
                        sending.append((number, text))
                        if len(sending) >= want:
                            break
                    else:
                        passed += 1
                        if passed % 1024 == 0:  # a long run of done lines (a resume) lets the answers in
                            await asyncio.sleep(0)
            if not sending and not unanswered:
                return
            job.stats.in_flight += len(sending)
            unanswered += len(sending)
            answers = await worker.exchange.remote(sending, batch)
            unanswered -= len(answers)
            job.stats.in_flight -= len(answers)
            for answer in answers:
                if answer is None:
                    job.stats.not_sent += 1
                    job.stopped = "budget reached: rerun with a larger budget to send the remaining lines"
                    stop = True
                else:
                    job.write_line(*answer)

    try:
        await run_all(drive(worker) for worker in pool)
    finally:
        lines.close()  # the input file, when a stop left lines unread
