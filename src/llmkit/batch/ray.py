"""A batch job on a Ray cluster (extra ``ray``): the same output and resume semantics as on one machine.

The driver (the process that ran ``llmkit batch --ray``) keeps everything that makes a job crash-safe: it reads the
input, skips what the output already holds, and is the one writer. It sends chunks of requests to Ray actors, each
running its own llmkit :class:`~llmkit.batch.runner.Engine` (its own LLM, its own connection pool, ``concurrency /
workers`` requests in flight), and writes each record as its chunk comes back. So the output needs no shared
filesystem, and a killed driver loses only the chunks in flight.

Limits and the budget are global: with ``redis_url`` every worker uses the job's Redis counters; otherwise one small
Ray actor holds the job's :class:`~llmkit.batch.limits.LocalGate`, and every worker asks it before each call.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from llmkit.batch.input import BadLine, parse_line, read_lines
from llmkit.batch.limits import Gate, LocalGate, RedisGate
from llmkit.batch.output import encode
from llmkit.batch.runner import Engine, EngineOptions, Job, Tally, bad_line_record, tally
from llmkit.errors import missing_extra

#: Chunks a worker holds at once: one running while the next is on its way.
_CHUNKS_PER_WORKER = 3


class GateActor:
    """The job's limits in one Ray actor (its methods run one at a time: each decision is atomic)."""

    def __init__(self, rpm: int | None, tpm: int | None, budget: Decimal | None) -> None:
        self.gate = LocalGate(rpm=rpm, tpm=tpm, budget=budget)

    def try_acquire(self, estimate: Decimal) -> float:
        return self.gate.try_acquire(estimate)

    def finish(self, estimate: Decimal, tokens: int, cost: Decimal | None) -> None:
        self.gate.finish(estimate, tokens, cost)


class ActorGate:
    """A worker's view of the :class:`GateActor` (the engine's :class:`~llmkit.batch.limits.Limits`)."""

    active = True

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def acquire(self, estimate: Decimal = Decimal(0)) -> float:
        wait: float = await self.actor.try_acquire.remote(estimate)
        return wait

    async def release(self, estimate: Decimal, tokens: int, cost: Decimal | None) -> None:
        await self.actor.finish.remote(estimate, tokens, cost)


class Worker:
    """One Ray actor: an engine answering chunks of requests, ``concurrency`` at a time over all its chunks."""

    def __init__(self, llm: Any, gate: Any, options: EngineOptions, concurrency: int) -> None:
        if isinstance(gate, tuple):  # ("redis", url, job, rpm, tpm, budget): each worker opens its own connection
            _, url, job, rpm, tpm, budget = gate
            gate = RedisGate(url, job, rpm=rpm, tpm=tpm, budget=budget)
        elif gate is None:
            gate = LocalGate()
        else:
            gate = ActorGate(gate)
        self.engine = Engine(llm, gate, options)
        self.concurrency = concurrency
        self._slots: asyncio.Semaphore | None = None

    async def process(self, lines: list[tuple[int, str | bytes]]) -> list[tuple[bytes, Tally] | None]:
        """Parse and answer a chunk of input lines: each one's record encoded, with its counts (None: not sent,
        the budget is reached)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
            await self.engine.warm_up()
        slots, engine = self._slots, self.engine

        async def one(number: int, text: str | bytes) -> tuple[bytes, Tally] | None:
            item = parse_line(text, number)
            if isinstance(item, BadLine):
                record: dict[str, Any] | None = bad_line_record(item)
            else:
                async with slots:
                    record = await engine.process(item)
            return None if record is None else (encode(record), tally(record))

        return list(await asyncio.gather(*(one(number, text) for number, text in lines)))


def _gate_for_workers(ray: Any, gate: Gate) -> Any:
    if not gate.active:
        return None
    if isinstance(gate, RedisGate):
        return ("redis", gate.url, gate.job, gate.rpm, gate.tpm, gate.budget)
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
        pool = [actor.remote(llm, shared, options, per_worker) for _ in range(count)]
        await _dispatch(input, job, pool, max(1, math.ceil(per_worker / 2)))
    finally:
        if started:
            ray.shutdown()


async def _dispatch(input: str | Path | Iterable[Any], job: Job, pool: list[Any], size: int) -> None:
    slots: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(_CHUNKS_PER_WORKER):
        for worker in pool:
            slots.put_nowait(worker)
    tasks: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()

    async def send(worker: Any, chunk: list[tuple[int, str | bytes]]) -> None:
        try:
            answers = await worker.process.remote(chunk)
        finally:
            job.stats.in_flight -= len(chunk)
            slots.put_nowait(worker)
        for answer in answers:
            if answer is None:
                job.stats.not_sent += 1
                job.stopped = "budget reached: rerun with a larger budget to send the remaining lines"
                stop.set()
            else:
                job.write_line(*answer)

    async def submit(chunk: list[tuple[int, str | bytes]]) -> None:
        worker = await slots.get()
        job.stats.in_flight += len(chunk)
        task = asyncio.create_task(send(worker, chunk))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # The driver reads only each line's custom_id (to skip done lines and repeated ids); the workers parse the
    # requests, in parallel, and a raw line pickles in a fraction of the time of its parsed messages.
    chunk: list[tuple[int, str | bytes]] = []
    passed = 0
    for number, text in read_lines(input):
        if stop.is_set():
            break
        if not job.admit_line(number, text):
            passed += 1
            if passed % 1024 == 0:  # a long run of done lines (a resume) lets finished chunks be written
                await asyncio.sleep(0)
            continue
        chunk.append((number, text))
        if len(chunk) >= size:
            await submit(chunk)
            chunk = []
            await asyncio.sleep(0)  # let finished chunks be written while the input is read
    if chunk and not stop.is_set():
        await submit(chunk)
    while tasks:
        await asyncio.gather(*list(tasks))
