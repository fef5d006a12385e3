"""Batch jobs: requests/s of ``llmkit batch`` vs a hand-written asyncio + aiohttp loop (the raw floor: each line of
the same input file read with ``json.loads`` and its body posted as it is; no parsing into types, no limits, no
resume, buffered writes) and vs LiteLLM's ``batch_completion``, against the canned loopback server; and memory over
a long input.

Every case answers the same N chat requests with the same concurrency and writes one JSON line per answer; the cases
run interleaved, ``--rounds`` times, and each reports its median. ``python -m bench`` runs this in a new process (a
batch job's own, as ``llmkit batch`` has). The memory case streams a generated input through
``llmkit.batch.run`` against the canned server (or, with ``--memory-upstream in-process``, a model in the process, to
see the pipeline alone) and samples RSS as it goes; the issue's figure is ``--memory-lines 1000000`` (about 10
minutes against the canned server on two cores).

Run: .venv/bin/python -m bench.batch [--requests 3000] [--concurrency 8,256] [--rounds 3] [--memory-lines 200000]
     [--memory-upstream canned|in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.canned_server import running

PROMPT = "What is the capital of France?"


def _input(path: Path, count: int) -> Path:
    with path.open("w") as out:
        for i in range(count):
            body = {"model": "bench", "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}]}
            out.write(json.dumps({"custom_id": f"r{i}", "body": body}) + "\n")
    return path


async def _raw_aiohttp(base: str, source: Path, concurrency: int, output: Path) -> None:
    """The floor: each input line read and its body posted as it is, each answer written as one line (buffered)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        with source.open("rb") as lines, output.open("w") as out:

            async def worker() -> None:
                for line in lines:
                    request = json.loads(line)
                    async with session.post(f"{base}/chat/completions", json=request["body"]) as response:
                        answer = await response.json()
                    out.write(json.dumps({"custom_id": request["custom_id"], "body": answer}) + "\n")

            await asyncio.gather(*(worker() for _ in range(concurrency)))


def _litellm(base: str, count: int, concurrency: int, output: Path) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    messages = [[{"role": "user", "content": f"{PROMPT} ({i})"}] for i in range(count)]
    answers = litellm.batch_completion(
        model="openai/bench", messages=messages, api_base=base, api_key="x", max_workers=concurrency
    )
    with output.open("w") as out:
        for i, answer in enumerate(answers):
            out.write(json.dumps({"custom_id": f"r{i}", "body": answer.model_dump()}) + "\n")


FLOOR, OURS = "asyncio + aiohttp (raw floor)", "llmkit batch"


def throughput(requests: int = 3000, concurrency: int = 8, rounds: int = 1) -> dict[str, float]:
    """Requests per second of each case: the median of ``rounds`` interleaved runs (one warm-up run of 200 requests
    each first); key ``"ratio"``: the median of each round's llmkit / floor (a round's cases run back to back, while
    this machine's speed moves by tens of percent between rounds)."""
    import llmkit.batch
    from llmkit.providers.openai import OpenAILike

    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    source = _input(folder / "in.jsonl", requests)
    warm = _input(folder / "warm.jsonl", 200)
    rates: dict[str, list[float]] = {}
    with running() as base:
        cases: dict[str, Any] = {
            FLOOR: lambda n, out: asyncio.run(_raw_aiohttp(base, source if n == requests else warm, concurrency, out)),
            OURS: lambda n, out: llmkit.batch.run(
                source if n == requests else warm,
                out,
                OpenAILike(model="bench", api_base=base),
                concurrency=concurrency,
                progress=False,
            ),
        }
        if concurrency <= 64:  # batch_completion is a thread per request in flight
            cases["LiteLLM batch_completion"] = lambda n, out: _litellm(base, n, concurrency, out)
        for index, case in enumerate(cases.values()):
            case(200, folder / f"warm-{index}.jsonl")
        for round_ in range(rounds):
            for index, (name, case) in enumerate(cases.items()):
                output = folder / f"out-{round_}-{index}.jsonl"
                gc.collect()  # each case pays for its own garbage, not for the case before it
                start = time.perf_counter()
                case(requests, output)
                rates.setdefault(name, []).append(requests / (time.perf_counter() - start))
                lines = output.read_bytes().count(b"\n")
                assert lines == requests, f"{name} wrote {lines} lines"
                output.unlink()
    result = {name: statistics.median(values) for name, values in rates.items()}
    result["ratio"] = statistics.median(ours / floor for ours, floor in zip(rates[OURS], rates[FLOOR], strict=True))
    return result


def memory(lines: int = 1_000_000, upstream: str = "canned", concurrency: int = 256) -> dict[str, float]:
    """RSS (MB) while a ``lines``-line job streams through: at 10%, 50% and 100% of the lines, and the peak.

    ``upstream``: ``"canned"`` (the canned server, over HTTP) or ``"in-process"`` (a model answering in the event
    loop: the pipeline alone, several times faster)."""
    import psutil

    import llmkit.batch
    from llmkit.providers.function import FunctionLLM
    from llmkit.providers.openai import OpenAILike

    class InProcess(FunctionLLM):
        async def _achat(self, messages: Sequence[Any], **kwargs: Any) -> Any:
            return self._chat(messages, **kwargs)  # no worker thread: the pipeline alone is measured

    folder = Path(tempfile.mkdtemp(prefix="bench-batch-memory-"))
    source = _input(folder / "in.jsonl", lines)
    output = folder / "out.jsonl"
    process = psutil.Process()
    samples: dict[str, float] = {"start": process.memory_info().rss / 1e6}
    peak = [samples["start"]]
    done = threading.Event()

    def sample() -> None:
        marks = {0.1: "10%", 0.5: "50%"}
        record_size = 0  # bytes of one record, from the first one written
        while not done.wait(0.2):
            rss = process.memory_info().rss / 1e6
            peak[0] = max(peak[0], rss)
            written = output.stat().st_size if output.exists() else 0
            if not record_size and written:
                with output.open("rb") as first:
                    record_size = len(first.readline())
            ratio = written / (lines * max(record_size, 1))
            for mark, label in list(marks.items()):
                if ratio >= mark and label not in samples:
                    samples[label] = rss
                    marks.pop(mark)

    with contextlib.ExitStack() as stack:
        if upstream == "canned":
            llm: Any = OpenAILike(model="bench", api_base=stack.enter_context(running()))
        elif upstream == "in-process":
            llm = InProcess(chat_fn=lambda messages, kwargs: "Paris.")
        else:
            raise ValueError(f"upstream must be 'canned' or 'in-process', got {upstream!r}")
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        result = llmkit.batch.run(source, output, llm, concurrency=concurrency, progress=False)
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    samples["100%"] = process.memory_info().rss / 1e6
    samples["peak"] = peak[0]
    samples["lines/s"] = result.succeeded / elapsed
    samples["lines"] = float(result.succeeded)
    samples["canned"] = float(upstream == "canned")
    for path in (source, output):
        path.unlink()
    return samples


def memory_line(rss: dict[str, float]) -> str:
    upstream = "canned server" if rss.get("canned") else "in-process model"
    return f"Memory over a {rss['lines']:,.0f}-line job ({rss['lines/s']:,.0f} lines/s, {upstream}): RSS " + ", ".join(
        f"{k} {rss[k]:.0f} MB" for k in ("start", "10%", "50%", "100%", "peak") if k in rss
    )


def table(rates: dict[str, float], rss: dict[str, float] | None = None) -> str:
    floor = rates[FLOOR]
    lines = ["| case | requests/s | share of the floor |", "|---|---|---|"]
    lines += [
        f"| {name} | {rate:.0f} | {rates['ratio'] if name == OURS else rate / floor:.2f}x |"
        for name, rate in rates.items()
        if name != "ratio"
    ]
    ratio = rates["ratio"]
    verdict = "pass" if ratio >= 0.8 else "FAIL"
    lines += ["", f"llmkit batch / raw floor (median of the rounds' ratios): {ratio:.2f}x (>= 0.8x: {verdict})"]
    if rss:
        lines += ["", memory_line(rss)]
    return "\n".join(lines)


def in_new_process(
    requests: int, concurrency: int, rounds: int, memory_lines: int
) -> tuple[dict[str, float], dict[str, float]]:
    """:func:`throughput` and :func:`memory` in a new Python process, as a batch job runs (``llmkit batch``): the
    report's earlier benchmarks leave their objects on this process's heap, and each pass of the garbage collector
    over them would be charged to whichever case allocates more, not to its own work."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "bench.batch", "--json", "--requests", str(requests)]
    command += ["--concurrency", str(concurrency), "--rounds", str(rounds), "--memory-lines", str(memory_lines)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)  # its errors on our stderr
    rates, rss = json.loads(done.stdout.splitlines()[-1])
    return rates, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="64,256", help="requests in flight; several: comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs of each case (the median is shown)")
    parser.add_argument("--memory-lines", type=int, default=200_000, help="0 skips the memory case")
    parser.add_argument("--memory-upstream", choices=["canned", "in-process"], default="canned")
    parser.add_argument("--json", action="store_true", help="one concurrency: print [rates, rss] as one JSON line")
    args = parser.parse_args()
    if args.json:
        rates = throughput(args.requests, int(args.concurrency), args.rounds)
        rss = memory(args.memory_lines, args.memory_upstream) if args.memory_lines else {}
        print(json.dumps([rates, rss]))
        return 0
    for concurrency in [int(value) for value in args.concurrency.split(",")]:
        print(f"{args.requests} requests at {concurrency} in flight, median of {args.rounds} rounds:\n")
        print(table(throughput(args.requests, concurrency, args.rounds)) + "\n", flush=True)
    if args.memory_lines:
        rss = memory(args.memory_lines, args.memory_upstream)
        print(memory_line(rss))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
