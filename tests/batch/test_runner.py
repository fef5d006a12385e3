"""Batch jobs end to end against the fault-injecting loopback server: every line accounted for, crash and resume,
rpm measured at the server, the budget, bad lines, structured output per line, the CLI."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

import llmkit.batch
from llmkit import ScriptedLLM
from llmkit.batch.limits import rpm_window
from llmkit.providers.openai import OpenAILike
from llmkit.usage.cost import clear_prices, set_price
from tests.servers.fault import FaultServer

ROOT = Path(__file__).resolve().parents[2]


def write_input(path: Path, count: int, start: int = 0) -> Path:
    with path.open("w") as out:
        for i in range(start, start + count):
            body = {"model": "ignored", "messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": 8}
            out.write(json.dumps({"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
            out.write("\n")
    return path


def records(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "the output ends with a partial line"
    return [json.loads(line) for line in raw.splitlines()]


def llm_for(server: FaultServer, scenario: str, test_id: str | None = None) -> OpenAILike:
    headers = {"x-test-id": test_id or uuid.uuid4().hex}
    return OpenAILike(model=scenario, api_base=server.url, default_headers=headers)


def attempts(server: FaultServer, test_id: str) -> list[float]:
    times: list[float] = httpx.get(f"{server.url.removesuffix('/v1')}/_attempts/{test_id}").json()
    return times


def answer(record: dict[str, Any]) -> str:
    content: str = record["response"]["body"]["choices"][0]["message"]["content"]
    return content


def test_10000_lines_with_injected_429_and_500_are_all_accounted_for(fault_server: FaultServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", 10_000)
    test_id = uuid.uuid4().hex
    result = llmkit.batch.run(
        source,
        tmp_path / "out.jsonl",
        llm_for(fault_server, "flaky", test_id),
        concurrency=8,  # httpx's async pool slows down past ~8 connections (O(n^2) per request in httpcore)
        max_retries=20,  # a line fails 6 attempts in a row ~1.6 times in 10,000 with 1 in 4.3 attempts failing
        retry_initial_delay=0.001,
    )
    out = records(tmp_path / "out.jsonl")
    ids = Counter(record["custom_id"] for record in out)
    assert len(out) == 10_000
    assert set(ids) == {f"q{i}" for i in range(10_000)}
    assert max(ids.values()) == 1
    assert [r for r in out if r["error"] is not None] == []
    assert result.succeeded == 10_000
    assert result.failed == 0
    assert result.complete
    for record in out:  # each line got its own answer
        assert answer(record) == f"echo: question {record['custom_id'][1:]}"
        assert record["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    sent = len(attempts(fault_server, test_id))
    retried = sum(record["attempts"] - 1 for record in out)
    assert sent == 10_000 + retried  # each attempt went to the server once: no transport retry under ours
    assert retried >= 10_000 // 7  # the injected 429s and 500s were retried, not written as errors
    assert result.tokens == 40_000


def test_errors_that_do_not_retry_are_typed_records(fault_server: FaultServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", 5)
    result = llmkit.batch.run(source, tmp_path / "out.jsonl", llm_for(fault_server, "400"))
    out = records(tmp_path / "out.jsonl")
    assert result.failed == 5
    assert {record["error"]["type"] for record in out} == {"BadRequestError"}
    assert {record["error"]["status_code"] for record in out} == {400}
    assert all(record["response"] is None and record["attempts"] == 1 for record in out)


def test_retries_give_up_after_max_retries(fault_server: FaultServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", 2)
    llmkit.batch.run(
        source, tmp_path / "out.jsonl", llm_for(fault_server, "always-503"), max_retries=2, retry_initial_delay=0.001
    )
    out = records(tmp_path / "out.jsonl")
    assert [(r["error"]["type"], r["attempts"]) for r in out] == [("ServerError", 3)] * 2


def test_a_malformed_line_is_an_error_record_with_its_line_number(fault_server: FaultServer, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"custom_id": "a", "prompt": "one"}\n'
        "{not json\n"
        "\n"
        '{"custom_id": "c", "body": {"messages": "nope"}}\n'
        '{"custom_id": "d", "url": "/v1/embeddings", "body": {"input": "x"}}\n'
        '{"custom_id": "e", "url": "/v1/completions", "body": {"prompt": "two", "max_tokens": 3}}\n'
    )
    result = llmkit.batch.run(source, tmp_path / "out.jsonl", llm_for(fault_server, "echo"))
    out = {record["custom_id"]: record for record in records(tmp_path / "out.jsonl")}
    assert set(out) == {"a", "line-2", "c", "d", "e"}
    assert out["line-2"]["error"]["type"] == "InputError"
    assert out["line-2"]["error"]["message"].startswith("line 2: not JSON")
    assert out["c"]["line"] == 4
    assert "'messages' must be a non-empty list" in out["c"]["error"]["message"]
    assert "/v1/embeddings" in out["d"]["error"]["message"]
    assert answer(out["a"]) == "echo: one"
    assert out["e"]["error"] is None  # a completion (the server answers it in chat form; the text is parsed)
    assert (result.succeeded, result.failed) == (2, 3)


def test_rpm_is_respected_at_the_server(fault_server: FaultServer, tmp_path: Path) -> None:
    rpm, count = 600, 45
    per_window, window = rpm_window(rpm)
    source = write_input(tmp_path / "in.jsonl", count)
    test_id = uuid.uuid4().hex
    llmkit.batch.run(source, tmp_path / "out.jsonl", llm_for(fault_server, "echo", test_id), concurrency=16, rpm=rpm)
    times = sorted(attempts(fault_server, test_id))
    assert len(times) == count
    # In any span of L seconds the server saw at most per_window * (ceil(L / window) + 1) requests (fixed windows),
    # which for L = 60 s is rpm. Checked for 1 s spans, with 1 request of slack for network jitter.
    for i, start in enumerate(times):
        inside = sum(1 for t in times[i:] if t - start <= 1.0)
        assert inside <= 2 * per_window + 1
    elapsed = times[-1] - times[0]
    assert elapsed >= (count // per_window - 1) * window - 0.1  # 45 requests at 10 a second: over 3 s at least
    assert count <= per_window * (math.ceil(elapsed / window) + 1)  # the fixed windows the run touched


@pytest.fixture
def priced() -> Iterator[None]:
    # The fault server's answers name the model "m"; 3 input + 1 output tokens at 1000/1000 USD per million tokens
    # cost 0.004 USD a request.
    set_price("m", input=1000, output=1000)
    yield
    clear_prices()


@pytest.mark.usefixtures("priced")
def test_budget_stops_the_job_and_a_rerun_with_more_budget_finishes_it(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.jsonl", 200)
    llm = llm_for(fault_server, "echo")
    first = llmkit.batch.run(source, tmp_path / "out.jsonl", llm, concurrency=4, budget="0.2")
    assert not first.complete
    assert first.stopped
    assert "budget" in first.stopped
    assert first.failed == 0
    assert first.succeeded == 50  # 0.2 / 0.004: every request in flight reserved the average
    assert first.cost == Decimal("0.2")
    assert all(r["cost"] == {"amount": "0.004", "currency": "USD"} for r in records(tmp_path / "out.jsonl"))
    second = llmkit.batch.run(source, tmp_path / "out.jsonl", llm, concurrency=4, budget="10")
    assert second.complete
    assert second.skipped == first.succeeded
    assert second.succeeded == 200 - first.succeeded
    ids = Counter(record["custom_id"] for record in records(tmp_path / "out.jsonl"))
    assert len(ids) == 200
    assert max(ids.values()) == 1


@pytest.mark.usefixtures("priced")
def test_a_budget_smaller_than_the_requests_in_flight_is_not_passed(fault_server: FaultServer, tmp_path: Path) -> None:
    # 32 workers, a budget of 5 requests: the first request goes alone and tells the job what one costs
    source = write_input(tmp_path / "in.jsonl", 100)
    llm = llm_for(fault_server, "echo")
    result = llmkit.batch.run(source, tmp_path / "out.jsonl", llm, concurrency=32, budget="0.02")
    assert (result.succeeded, result.cost) == (5, Decimal("0.02"))
    assert "budget" in (result.stopped or "")


def test_a_failure_that_is_not_a_lines_own_stops_every_worker_before_it_is_raised(tmp_path: Path) -> None:
    from llmkit.providers.function import FunctionLLM

    class Answering(FunctionLLM):
        async def _achat(self, messages: Any, **kwargs: Any) -> Any:
            if messages[-1].content == "boom":
                raise RuntimeError("the program's own bug, not a line's error")
            await asyncio.sleep(0.2)
            return self._chat(messages, **kwargs)

    lines = [{"custom_id": f"q{n}", "prompt": "boom" if n == 3 else "hi"} for n in range(40)]

    async def job() -> set[asyncio.Task[Any]]:
        with pytest.raises(RuntimeError, match="own bug"):
            await llmkit.batch.arun(lines, tmp_path / "out.jsonl", Answering(chat_fn=lambda m, k: "ok"), concurrency=4)
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    assert asyncio.run(job()) == set()  # no worker left sending requests or writing to a closed output


_FULL_DISK = """
import resource, signal, sys
import llmkit.batch
from llmkit.providers.function import FunctionLLM

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
llm = FunctionLLM(chat_fn=lambda messages, kwargs: "ok")
lines = [{"custom_id": f"q{n}", "prompt": "hi"} for n in range(2000)]
try:
    llmkit.batch.run(lines, sys.argv[1], llm, concurrency=4)
except OSError as exc:
    print(exc.errno, len(llm.calls))
"""


def test_an_output_that_cannot_be_written_stops_the_job_with_the_systems_error(tmp_path: Path) -> None:
    # A real failing disk: the process may write 4 KB to a file (RLIMIT_FSIZE), then every write fails.
    import errno

    script = tmp_path / "full.py"
    script.write_text(_FULL_DISK)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out.jsonl")], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    failed_with, calls = map(int, done.stdout.split())
    assert failed_with == errno.EFBIG  # raised, not swallowed
    assert calls < 200  # the job stopped at the failed write, not after answering every line into the void
    written = (tmp_path / "out.jsonl").read_bytes()
    assert 0 < len(written) <= 4096
    whole = written[: written.rfind(b"\n") + 1]  # a cut last line is what a rerun's scan drops
    assert all(json.loads(line)["custom_id"] for line in whole.splitlines())


def test_retry_failed_sends_the_failed_lines_again(fault_server: FaultServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    llmkit.batch.run(source, out, llm_for(fault_server, "400"))
    again = llmkit.batch.run(source, out, llm_for(fault_server, "echo"))
    assert again.skipped == 3
    assert again.succeeded == 0
    retried = llmkit.batch.run(source, out, llm_for(fault_server, "echo"), retry_failed=True)
    assert retried.succeeded == 3
    assert [r["error"] for r in records(out)] == [None] * 3


class Answer(BaseModel):
    name: str
    count: int


def test_schema_gives_each_record_a_validated_output(tmp_path: Path) -> None:
    lines = [{"custom_id": f"s{i}", "prompt": f"thing {i}"} for i in range(3)]
    result = llmkit.batch.run(lines, tmp_path / "out.jsonl", ScriptedLLM(), schema=Answer)
    out = records(tmp_path / "out.jsonl")
    assert result.succeeded == 3
    assert all(Answer.model_validate(record["output"]) for record in out)
    assert all(record["cost"]["amount"] == "0" for record in out)  # a local (mock) model costs nothing


async def test_arun_inside_an_event_loop(tmp_path: Path) -> None:
    lines = [{"prompt": "a"}, {"prompt": "b"}]
    result = await llmkit.batch.arun(lines, tmp_path / "out.jsonl", ScriptedLLM(), concurrency=2)
    assert result.succeeded == 2
    with pytest.raises(llmkit.errors.UsageError, match="arun"):
        llmkit.batch.run(lines, tmp_path / "out.jsonl", ScriptedLLM())
    await asyncio.sleep(0)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmkit.cli", "batch", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(fault_server: FaultServer, tmp_path: Path) -> None:
    count = 3000
    source = write_input(tmp_path / "in.jsonl", count)
    out = tmp_path / "out.jsonl"
    args = _cli(str(source), "-o", str(out), "--model", "openai-like/slow-echo", "--api-base", fault_server.url)
    process = subprocess.Popen([*args, "--concurrency", "8", "--fsync", "never"], env=_env(), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size < 40_000) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = records(out) if out.read_bytes().endswith(b"\n") else None
    survived = len(out.read_bytes().splitlines())
    assert 0 < survived < count, "the run was killed mid-way"
    with out.open("ab") as tail:  # as if the kill had cut a line short
        tail.write(b'{"custom_id": "q999999", "respo')
    finished = subprocess.run(
        [*args, "--concurrency", "32", "--model", "openai-like/echo"], env=_env(), capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    assert "already done" in finished.stderr
    final = records(out)
    ids = Counter(record["custom_id"] for record in final)
    assert set(ids) == {f"q{i}" for i in range(count)}
    assert max(ids.values()) == 1
    assert all(record["error"] is None for record in final)
    if written is not None:
        assert final[: len(written)] == written  # lines written before the kill are kept as they were


def test_cli_budget_stop_exits_3(fault_server: FaultServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", 20)
    finished = subprocess.run(
        _cli(str(source), "-o", str(tmp_path / "out.jsonl"), "--model", "openai-like/echo", "--api-base",
             fault_server.url, "--budget", "0"),
        env=_env(),
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert finished.returncode == 3, finished.stderr
    assert "budget reached" in finished.stderr
    assert records(tmp_path / "out.jsonl") == []


def test_a_repeated_custom_id_is_an_error_record_with_its_line_number_also_on_a_rerun(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"custom_id": "a", "prompt": "one"}\n'
        '{"custom_id": "b", "prompt": "two"}\n'
        '{"custom_id": "a", "prompt": "three"}\n'
        "{broken\n"
        '{"custom_id": "b", "prompt": "four"}\n'
        '{"custom_id": "a", "prompt": 5}\n'
    )
    test_id = uuid.uuid4().hex
    llm = llm_for(fault_server, "echo", test_id)
    result = llmkit.batch.run(source, tmp_path / "out.jsonl", llm)
    out = {record["custom_id"]: record for record in records(tmp_path / "out.jsonl")}
    assert len(out) == 6  # one record per line, none overwritten
    assert answer(out["a"]) == "echo: one"
    assert answer(out["b"]) == "echo: two"
    for line, repeated in ((3, "a"), (5, "b"), (6, "a")):
        error = out[f"line-{line}"]["error"]
        assert out[f"line-{line}"]["line"] == line
        assert error["type"] == "InputError"
        assert error["message"].startswith(f"line {line}: custom_id '{repeated}' is an earlier line's")
    assert (result.succeeded, result.failed) == (2, 4)
    assert len(attempts(fault_server, test_id)) == 2  # the repeated lines were not sent

    again = llmkit.batch.run(source, tmp_path / "out.jsonl", llm)
    assert (again.skipped, again.succeeded, again.failed) == (6, 0, 0)
    assert len(records(tmp_path / "out.jsonl")) == 6
