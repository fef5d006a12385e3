"""The batch engine: requests through the job's limits to the LLM, with bounded concurrency, retries and records.

:class:`Engine` answers one request as one output record (the same code on one machine and on every Ray worker).
:class:`Job` is the driver's side: it reads the input, skips what the output already holds, writes bad lines as
error records, and owns the one writer. :func:`arun` runs ``concurrency`` workers, each taking the next input line;
:func:`run` is its synchronous form.

Every call the engine makes (a structured answer may take several) passes the job's :class:`~.limits.Gate` first,
and is sent with ``max_retries=0`` to an LLM that retries by itself: the engine retries (408, 409, 429, 5xx,
connection errors; the server's Retry-After honoured), so each attempt counts against ``rpm``, as the service
counts it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmkit.batch.input import BadLine, BatchRequest, count_lines, line_id, parse_line, read_lines
from llmkit.batch.limits import Gate, Limits, LocalGate, RedisGate
from llmkit.batch.output import FsyncPolicy, IdSet, ResultWriter, drop_failed, encode, scan
from llmkit.errors import ConfigurationError, InputError, LLMError, UsageError

if TYPE_CHECKING:
    from llmkit.batch.progress import Display
    from llmkit.llm import LLM
    from llmkit.types import ChatResponse, CompletionResponse, Usage
    from llmkit.usage.cost import Cost


class _BudgetReached(Exception):
    """The next call would pass the job's budget: the request is not sent (and not written)."""


@dataclass
class Stats:
    """A job's counts so far, for the progress display and the result."""

    total: int | None = None
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    not_sent: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    unknown_cost: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def written(self) -> int:
        """Records written by this run."""
        return self.succeeded + self.failed

    def count(self, failed: bool, tokens: int, usd: str | None, unknown_cost: bool) -> None:
        """Count a record written, from its :func:`tally`."""
        if failed:
            self.failed += 1
        else:
            self.succeeded += 1
        self.tokens += tokens
        if usd is not None:
            self.cost += Decimal(usd)
        elif unknown_cost:
            self.unknown_cost += 1


Tally = tuple[bool, int, str | None, bool]


def tally(record: dict[str, Any]) -> Tally:
    """What the counts take from a record: whether it failed, its tokens, its USD cost (the record's decimal string)
    or None, and whether it is an answer without a known cost. (A Ray worker sends this beside the encoded line.)"""
    failed = record.get("error") is not None
    usage = record.get("usage")
    tokens = (usage.get("total_tokens") or 0) if usage else 0
    cost = record.get("cost")
    if cost and cost.get("amount") is not None:
        return failed, tokens, cost["amount"] if cost.get("currency", "USD") == "USD" else None, False
    return failed, tokens, None, not failed


@dataclass
class BatchResult:
    """What a job did: this run's records, the lines skipped as already done, and why it stopped early, if it did.

    ``cost`` sums the known USD costs of this run's records; ``unknown_cost`` counts answers nothing priced."""

    output: Path
    succeeded: int
    failed: int
    skipped: int
    not_sent: int
    stopped: str | None
    tokens: int
    cost: Decimal
    unknown_cost: int
    elapsed: float

    @property
    def complete(self) -> bool:
        """Whether every input line now has a record in the output."""
        return self.stopped is None

    def summary(self) -> str:
        """One line for people."""
        from llmkit.usage.cost import format_amount

        text = (
            f"{self.succeeded} succeeded, {self.failed} failed, {self.skipped} already done | "
            f"{self.tokens} tokens, {format_amount(self.cost)}"
        )
        if self.unknown_cost:
            text += f" (+{self.unknown_cost} answers without a price)"
        text += f" | {self.elapsed:.1f} s"
        if self.stopped:
            text += f" | stopped: {self.stopped}"
        return text


def _usage_json(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cache_read_tokens is not None:
        body["cache_read_tokens"] = usage.cache_read_tokens
    if usage.reasoning_tokens is not None:
        body["reasoning_tokens"] = usage.reasoning_tokens
    if usage.credits is not None:
        body["credits"] = usage.credits
    return body


def _cost_json(cost: Cost) -> dict[str, Any]:
    """A record's ``cost``: the amount as an exact decimal string, or why it is unknown."""
    amount = cost.amount
    if amount is None:
        return {"amount": None, "currency": None, "reason": cost.reason or "unknown"}
    return {"amount": f"{amount.normalize():f}" if amount else "0", "currency": cost.currency}


class _Calls:
    """The answers of one request's calls (several for a structured answer): usage and cost summed."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.amount: Decimal | None = Decimal(0)
        self.currency = "USD"
        self.reason = ""
        self.last: ChatResponse | CompletionResponse | None = None

    def add(self, response: ChatResponse | CompletionResponse, cost: Cost) -> None:
        self.last = response
        if response.usage is not None:
            self.usage = response.usage if self.usage is None else self.usage + response.usage
        if cost.amount is None or (self.amount and cost.currency != self.currency):
            self.amount, self.reason = None, cost.reason or "unknown"
        elif self.amount is not None:
            self.amount += cost.amount
            self.currency = cost.currency

    def cost_json(self) -> dict[str, Any] | None:
        if self.last is None:
            return None
        if self.amount is None:
            return {"amount": None, "currency": None, "reason": self.reason}
        return {"amount": f"{self.amount.normalize():f}" if self.amount else "0", "currency": self.currency}


def _chat_body(response: ChatResponse, model: str, custom_id: str) -> dict[str, Any]:
    raw = response.raw
    if isinstance(raw, dict) and isinstance(raw.get("choices"), list):
        return raw  # the service's own answer, as it sent it
    from llmkit.wire.openai import chat_completion_json

    return chat_completion_json(response, model, f"chatcmpl-batch-{custom_id}")


def _completion_body(response: CompletionResponse, model: str, custom_id: str) -> dict[str, Any]:
    raw = response.raw
    if isinstance(raw, dict) and isinstance(raw.get("choices"), list):
        return raw
    body: dict[str, Any] = {
        "id": f"cmpl-batch-{custom_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": response.text, "finish_reason": "stop"}],
    }
    usage = _usage_json(response.usage)
    if usage is not None:
        body["usage"] = {k: v for k, v in usage.items() if k.endswith("_tokens") and v is not None}
    return body


def error_record(custom_id: str, line: int, error: BaseException, attempts: int = 0) -> dict[str, Any]:
    """The record of a request that failed: the error's type, message and status (when the service sent one)."""
    detail: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        detail["status_code"] = status
    return {"custom_id": custom_id, "line": line, "response": None, "error": detail, "attempts": attempts}


def bad_line_record(bad: BadLine) -> dict[str, Any]:
    """The record of an input line that is not a request."""
    return error_record(bad.custom_id, bad.line, InputError(bad.error))


@dataclass
class EngineOptions:
    """What every worker of a job needs besides the LLM and the gate (picklable, for Ray)."""

    max_retries: int = 5
    schema: Any = None
    retry_initial_delay: float = 0.5
    retry_max_delay: float = 8.0


def _call(
    llm: LLM, request: BatchRequest, kwargs: dict[str, Any]
) -> Coroutine[Any, Any, ChatResponse | CompletionResponse]:
    """The call answering ``request`` (not awaited: no coroutine of its own)."""
    if request.kind == "chat":
        assert request.messages is not None
        return llm.achat(request.messages, **kwargs)
    assert request.prompt is not None
    return llm.acomplete(request.prompt, **kwargs)


class Engine:
    """Answers requests as records, through ``gate``; one per process (or Ray worker)."""

    def __init__(self, llm: LLM, gate: Limits, options: EngineOptions | None = None) -> None:
        from llmkit.transport.retry import RetryPolicy, is_retryable_error
        from llmkit.usage.cost import cost_of

        self.llm = llm
        self.gate = gate
        self._gated = gate.active  # the limits are set when a gate is made: asked once, not per call
        self.options = options or EngineOptions()
        self.output_cls: Any = None
        if self.options.schema is not None:
            from llmkit.output import output_type

            self.output_cls = output_type(self.options.schema)
        self._retryable = is_retryable_error
        self._cost_of = cost_of  # what response.cost computes, without its import on every call
        self.policy = RetryPolicy(
            max_retries=self.options.max_retries,
            initial_delay=self.options.retry_initial_delay,
            max_delay=self.options.retry_max_delay,
        )
        # An LLM that retries by itself gets max_retries=0 per call: the engine's retries pass the gate.
        self._call_kwargs: dict[str, Any] = {"max_retries": 0} if "max_retries" in type(llm).model_fields else {}
        self.model = llm.metadata.model_name

    async def warm_up(self) -> None:
        """Build the LLM's connection pool for this event loop (importing its HTTP stack) before the first request
        takes a slot of the job's limits: a cold worker would otherwise send its first requests a few hundred ms
        after the gate let them go, bunched with the next window's."""
        transport = getattr(self.llm, "transport", None)
        if transport is not None and hasattr(type(transport), "abackend"):
            transport.abackend  # noqa: B018 (a property that builds the pool)

    async def _through_gate(self, send: Callable[[], Awaitable[Any]]) -> tuple[Any, Cost]:
        """One call through the gate: the response and its cost."""
        while True:
            wait = await self.gate.acquire()
            if wait == 0.0:
                break
            if math.isinf(wait):
                raise _BudgetReached
            await asyncio.sleep(wait)
        tokens, spent, answered = 0, None, False
        try:
            response = await send()
            answered = True
            cost: Cost = self._cost_of(response.usage)
            if cost.amount is not None and cost.currency == "USD":
                spent = cost.amount
            if response.usage is not None:
                tokens = response.usage.total_tokens or 0
            return response, cost
        finally:
            await self.gate.release(tokens, spent, answered)

    async def _structured(self, request: BatchRequest, calls: _Calls) -> tuple[dict[str, Any], Any]:
        """A structured answer (one call or several): the last response's body and the output as JSON."""
        from llmkit._steps import arun_steps
        from llmkit.structured import structured_steps

        llm, gated = self.llm, self._gated

        async def achat(step_messages: Any, **step_kwargs: Any) -> ChatResponse:
            merged = {**step_kwargs, **self._call_kwargs}
            if gated:
                answer, cost = await self._through_gate(lambda: llm.achat(step_messages, **merged))
            else:
                answer = await llm.achat(step_messages, **merged)
                cost = self._cost_of(answer.usage)
            calls.add(answer, cost)
            return answer  # type: ignore[no-any-return]

        assert request.messages is not None
        mode = llm.pydantic_program_mode
        steps = structured_steps(llm, self.output_cls, request.messages, mode, dict(request.params))
        result = await arun_steps(steps, achat)
        assert calls.last is not None
        body = _chat_body(calls.last, self.model, request.custom_id)  # type: ignore[arg-type]
        return body, json.loads(self.output_cls.dump_json(result))

    async def process(self, request: BatchRequest) -> dict[str, Any] | None:
        """The record answering ``request``; None when the budget stopped it before it was sent."""
        # The common request (one call, no gate) is awaited right here, one coroutine level under the worker, and
        # its record is built in one dict: this is the engine's own cost per request.
        llm, structured = self.llm, self.output_cls is not None and request.kind == "chat"
        kwargs = {**request.params, **self._call_kwargs} if request.params else self._call_kwargs
        attempts = 0
        while True:
            attempts += 1
            calls: _Calls | None = None
            response: Any = None
            cost: Cost | None = None
            try:
                if structured:
                    calls = _Calls()
                    body, output = await self._structured(request, calls)
                    return {
                        "custom_id": request.custom_id,
                        "line": request.line,
                        "response": {"status_code": 200, "body": body},
                        "output": output,
                        "error": None,
                        "attempts": attempts,
                        "usage": _usage_json(calls.usage),
                        "cost": calls.cost_json(),
                    }
                if self._gated:
                    response, cost = await self._through_gate(lambda: _call(llm, request, kwargs))
                else:  # awaited here, without a closure
                    response = await _call(llm, request, kwargs)
                    cost = self._cost_of(response.usage)
                as_body = _chat_body if request.kind == "chat" else _completion_body
                body = as_body(response, self.model, request.custom_id)
                return {
                    "custom_id": request.custom_id,
                    "line": request.line,
                    "response": {"status_code": 200, "body": body},
                    "error": None,
                    "attempts": attempts,
                    "usage": _usage_json(response.usage),
                    "cost": _cost_json(cost),
                }
            except _BudgetReached:  # not written: a rerun with a larger budget sends it
                return None
            except LLMError as exc:
                if attempts <= self.options.max_retries and self._retryable(exc):
                    await asyncio.sleep(self.policy.delay(attempts, getattr(exc, "retry_after", None)))
                    continue
                record = error_record(request.custom_id, request.line, exc, attempts)
            except (ValueError, TypeError) as exc:  # a line's parameters the LLM cannot take: that line's error
                record = error_record(request.custom_id, request.line, exc, attempts)
            # what the calls that answered before the error used and cost
            if calls is not None:
                record["usage"], record["cost"] = _usage_json(calls.usage), calls.cost_json()
            elif response is not None:
                if cost is None:
                    cost = self._cost_of(response.usage)
                record["usage"], record["cost"] = _usage_json(response.usage), _cost_json(cost)
            else:
                record["usage"] = record["cost"] = None
            return record


#: Records pending that are written at once, without waiting for the event loop's next turn.
_FLUSH_AT = 256


class Job:
    """The driver's side of a job: input lines in, records out through the one writer, counts for the display."""

    def __init__(self, output: str | Path, fsync: FsyncPolicy = "batch", retry_failed: bool = False) -> None:
        self.output = Path(output)
        if retry_failed:
            drop_failed(self.output)
        resume = scan(self.output)
        self.done = resume.done
        self._resuming = len(self.done) > 0
        self.seen = IdSet()  # the custom_ids of this run's input lines so far
        self.stats = Stats()
        self.writer = ResultWriter(self.output, fsync)
        self.stopped: str | None = None
        # Records of the event loop's current turn, written together at the start of its next one (_flush).
        self._pending: list[bytes] = []
        self._write_failed: BaseException | None = None
        self._failure_raised = False

    def admit(self, number: int, text: str | bytes) -> BatchRequest | None:
        """The request of an input line to send, or None: already done (skipped), or bad (its error written).

        A line whose ``custom_id`` an earlier line has is bad: it is not sent (its answer would have no id of its
        own), and its error record is ``line-<n>``'s."""
        item = parse_line(text, number)
        if not self._admit_id(item.custom_id, number):
            return None
        if isinstance(item, BadLine):
            self.write(bad_line_record(item))
            return None
        return item

    def admit_line(self, number: int, text: str | bytes) -> bool:
        """Whether to send an input line to be parsed and answered elsewhere (a Ray worker, which writes a bad
        line's error record as :meth:`admit` does here): False when it is done, or repeats an earlier line's id."""
        return self._admit_id(line_id(text, number), number)

    def _admit_id(self, custom_id: str, number: int) -> bool:
        """Whether line ``number`` with ``custom_id`` is still to answer; a repeated id's error is written here."""
        if not self.seen.add_new(custom_id):
            bad = BadLine(
                f"line-{number}",
                number,
                f"line {number}: custom_id {custom_id!r} is an earlier line's; give every line its own "
                "custom_id (this line was not sent)",
            )
            self.seen.add(bad.custom_id)
            if self._resuming and bad.custom_id in self.done:
                self.stats.skipped += 1
            else:
                self.write(bad_line_record(bad))
            return False
        if self._resuming and custom_id in self.done:
            self.stats.skipped += 1
            return False
        return True

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and count it."""
        self._append(encode(record))
        self.stats.count(*tally(record))

    def write_line(self, line: bytes, counts: Tally) -> None:
        """Append one record encoded elsewhere (:func:`~llmkit.batch.output.encode`), with its :func:`tally`."""
        self._append(line)
        self.stats.count(*counts)

    def _append(self, line: bytes) -> None:
        # The records answered in one turn of the event loop (tens, at hundreds in flight) go out in one write at
        # the start of the next turn: a system call per record cost more than the rest of the engine's bookkeeping.
        # Until then a record is as unwritten as a request in flight: a kill loses it, and a rerun sends it again.
        # (An LLM that answers without yielding, a cache's hit, keeps the turn going: _FLUSH_AT lines go at once.)
        if self._write_failed is not None:
            self._failure_raised = True
            raise self._write_failed
        pending = self._pending
        if not pending:
            if self.writer.closed:
                raise ValueError("the job's output is closed")
            asyncio.get_running_loop().call_soon(self._flush)  # a job's records come from its event loop
        pending.append(line)
        if len(pending) >= _FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        lines, self._pending = self._pending, []
        if not lines or self._write_failed is not None:
            return
        try:
            self.writer.write_line(lines[0] if len(lines) == 1 else b"".join(lines))
        except BaseException as exc:  # raised by the next write, or by close(): the job stops with it
            self._write_failed = exc

    def close(self) -> None:
        """Write what is pending and close the output; a failed write is raised here unless a write raised it."""
        try:
            self._flush()
        finally:
            self.writer.close()
        if self._write_failed is not None and not self._failure_raised:
            self._failure_raised = True
            raise self._write_failed

    def result(self) -> BatchResult:
        stats = self.stats
        return BatchResult(
            output=self.output,
            succeeded=stats.succeeded,
            failed=stats.failed,
            skipped=stats.skipped,
            not_sent=stats.not_sent,
            stopped=self.stopped,
            tokens=stats.tokens,
            cost=stats.cost,
            unknown_cost=stats.unknown_cost,
            elapsed=time.monotonic() - stats.started,
        )


def _make_llm(llm: Any, model: str | None, **settings: Any) -> LLM:
    if llm is None and model is None:
        raise ConfigurationError("a batch job needs an LLM: pass llm=... or model='provider/model'")
    if isinstance(llm, str) or llm is None:
        from llmkit.registry import create

        spec = llm if isinstance(llm, str) else model
        assert spec is not None
        return create(spec, **{k: v for k, v in settings.items() if v is not None})
    made: LLM = llm
    return made


def make_gate(
    rpm: int | None, tpm: int | None, budget: float | Decimal | str | None, redis_url: str | None, job: str | None
) -> Gate:
    """The job's limits: in this process, or in Redis (shared by every process naming the same ``job``)."""
    amount = None if budget is None else Decimal(str(budget))
    if redis_url:
        return RedisGate(redis_url, job or "default", rpm=rpm, tpm=tpm, budget=amount)
    return LocalGate(rpm=rpm, tpm=tpm, budget=amount)


async def arun(
    input: str | Path | Iterable[Any],
    output: str | Path,
    llm: Any = None,
    *,
    model: str | None = None,
    concurrency: int = 32,
    rpm: int | None = None,
    tpm: int | None = None,
    budget: float | Decimal | str | None = None,
    schema: Any = None,
    max_retries: int = 5,
    retry_failed: bool = False,
    redis_url: str | None = None,
    job: str | None = None,
    fsync: FsyncPolicy = "batch",
    progress: bool | None = None,
    ray: str | bool | None = None,
    ray_workers: int | None = None,
    retry_initial_delay: float = 0.5,
) -> BatchResult:
    """Run a batch job: every input line answered as one output record; lines already in the output are skipped.

    Args:
        input: a JSONL file (OpenAI batch lines or ``{"prompt": ...}``), or an iterable of lines or dicts.
        output: the JSONL file of records, appended to (a rerun resumes).
        llm: an LLM (a router, a cached LLM...) or a ``create()`` spec; ``model=`` is the same as a spec.
        concurrency: requests in flight at most (over all workers with ``ray``).
        rpm, tpm: requests and tokens per minute for the whole job.
        budget: USD; no request is sent that would pass it (see :mod:`llmkit.batch.limits`).
        schema: a type for structured output per line (a pydantic model...); the record's ``output`` holds it.
        max_retries: retries of a request after 408/409/429/5xx/connection errors.
        retry_failed: first remove the output's error records, so those lines are tried again.
        redis_url, job: share the limits and the budget through Redis under the job's name.
        fsync: ``"always"``, ``"batch"`` (default) or ``"never"`` (see :mod:`llmkit.batch.output`).
        progress: a live display on stderr (default: when stderr is a terminal).
        ray: run on a Ray cluster: True or ``"auto"`` for ``ray.init()``'s default, or its address (extra ``ray``).
        ray_workers: Ray workers (default: the cluster's CPUs, at most ``concurrency``).

    Example:
        >>> import asyncio, json, tempfile, os
        >>> from llmkit.providers.function import FunctionLLM
        >>> folder = tempfile.mkdtemp()
        >>> lines = [{"custom_id": f"q{i}", "prompt": f"say {i}"} for i in range(3)]
        >>> llm = FunctionLLM(chat_fn=lambda messages, kwargs: messages[-1].content.upper())
        >>> result = asyncio.run(arun(lines, os.path.join(folder, "out.jsonl"), llm))
        >>> result.succeeded, result.failed
        (3, 0)
        >>> records = [json.loads(line) for line in open(os.path.join(folder, "out.jsonl"))]
        >>> sorted(r["response"]["body"]["choices"][0]["message"]["content"] for r in records)
        ['SAY 0', 'SAY 1', 'SAY 2']
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be at least 1, got {concurrency}")
    target = _make_llm(llm, model)
    options = EngineOptions(max_retries=max_retries, schema=schema, retry_initial_delay=retry_initial_delay)
    if options.schema is not None:
        from llmkit.output import output_type

        output_type(options.schema)  # an unusable type fails here, before anything is read or written
    gate = make_gate(rpm, tpm, budget, redis_url, job)
    state = Job(output, fsync, retry_failed)
    display = _display(progress, state.stats)
    if isinstance(input, str | Path):
        state.stats.total = await asyncio.to_thread(count_lines, input)
    try:
        if ray is not None and ray is not False:
            from llmkit.batch.ray import run_on_ray

            address = None if ray is True or ray == "auto" else str(ray)
            await run_on_ray(input, state, target, gate, options, concurrency, address, ray_workers, redis_url)
        else:
            await _run_local(input, state, Engine(target, gate, options), concurrency)
    finally:
        try:
            state.close()
        finally:
            if display is not None:
                display.stop()
    return state.result()


async def _run_local(input: str | Path | Iterable[Any], job: Job, engine: Engine, concurrency: int) -> None:
    await engine.warm_up()
    # Each worker takes the next line itself (no queue, no reader task): the input is read one line per request in
    # flight, so memory stays flat, and a line costs no queue hand-off.
    lines = read_lines(input)
    stop = False

    async def work() -> None:
        nonlocal stop
        passed = 0
        for number, text in lines:
            if stop:
                return
            item = job.admit(number, text)
            if item is None:
                passed += 1
                if passed % 1024 == 0:  # a long run of done or bad lines (a resume) lets the answers in
                    await asyncio.sleep(0)
                continue
            job.stats.in_flight += 1
            try:
                record = await engine.process(item)
            finally:
                job.stats.in_flight -= 1
            if record is None:
                job.stopped = "budget reached: rerun with a larger budget to send the remaining lines"
                job.stats.not_sent += 1
                stop = True
                continue
            job.write(record)

    try:
        await run_all(work() for _ in range(concurrency))
    finally:
        lines.close()  # the input file, when a stop left lines unread


async def run_all(loops: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run a job's loops to the end; the first to fail stops the others (cancelled, and waited for: none still
    reads the input or writes a record after this returns) and its exception is raised."""
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _display(progress: bool | None, stats: Stats) -> Display | None:
    from llmkit.batch.progress import start_display

    return start_display(stats, progress)


def run(input: str | Path | Iterable[Any], output: str | Path, llm: Any = None, **options: Any) -> BatchResult:
    """Run a batch job synchronously (see :func:`arun` for the arguments).

    Example:
        >>> import tempfile, os
        >>> from llmkit.providers.function import FunctionLLM
        >>> out = os.path.join(tempfile.mkdtemp(), "out.jsonl")
        >>> llm = FunctionLLM(chat_fn=lambda messages, kwargs: "ok")
        >>> run([{"prompt": "a"}, "not json", {"prompt": "b"}], out, llm).summary().split(" |")[0]
        '2 succeeded, 1 failed, 0 already done'
        >>> run([{"prompt": "a"}, "not json", {"prompt": "b"}], out, llm).skipped  # a rerun resumes
        3
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(input, output, llm, **options))
    raise UsageError("llmkit.batch.run() was called inside a running event loop: use await llmkit.batch.arun(...)")
