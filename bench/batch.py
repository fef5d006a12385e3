"""Batch jobs: requests/s of ``llmkit batch`` vs a hand-written asyncio + aiohttp loop (the raw floor: no parsing into
types, no limits, no resume) and vs LiteLLM's ``batch_completion``, against the canned loopback server; and memory
over a 1,000,000-line input.

Every case answers the same N chat requests with the same concurrency and writes one JSON line per answer. The memory
case streams a generated 1,000,000-line file through ``llmkit.batch.run`` with an in-process model (no I/O, so the
run takes minutes, not the hours a loopback server would) and samples RSS as it goes.

Run: .venv/bin/python -m bench.batch [--requests 3000] [--concurrency 8] [--memory-lines 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


async def _raw_aiohttp(base: str, count: int, concurrency: int, output: Path) -> None:
    import aiohttp

    pending = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        with output.open("w") as out:

            async def worker() -> None:
                for i in pending:
                    body = {"model": "bench", "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}]}
                    async with session.post(f"{base}/chat/completions", json=body) as response:
                        answer = await response.json()
                    out.write(json.dumps({"custom_id": f"r{i}", "body": answer}) + "\n")

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


def throughput(requests: int = 3000, concurrency: int = 8) -> dict[str, float]:
    """Requests per second of each case (one warm-up run of 200 requests each first)."""
    import llmkit.batch
    from llmkit.providers.openai import OpenAILike

    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    source = _input(folder / "in.jsonl", requests)
    warm = _input(folder / "warm.jsonl", 200)
    results: dict[str, float] = {}
    with running() as base:
        cases: dict[str, Any] = {
            "asyncio + aiohttp (raw floor)": lambda n, out: asyncio.run(_raw_aiohttp(base, n, concurrency, out)),
            "llmkit batch": lambda n, out: llmkit.batch.run(
                source if n == requests else warm,
                out,
                OpenAILike(model="bench", api_base=base),
                concurrency=concurrency,
                progress=False,
            ),
            "LiteLLM batch_completion": lambda n, out: _litellm(base, n, concurrency, out),
        }
        for index, (name, case) in enumerate(cases.items()):
            case(200, folder / f"warm-{index}.jsonl")
            start = time.perf_counter()
            case(requests, folder / f"out-{index}.jsonl")
            results[name] = requests / (time.perf_counter() - start)
            lines = (folder / f"out-{index}.jsonl").read_bytes().count(b"\n")
            assert lines == requests, f"{name} wrote {lines} lines"
    return results


def memory(lines: int = 1_000_000) -> dict[str, float]:
    """RSS (MB) while a ``lines``-line job streams through: at 10%, 50% and 100% of the lines, and the peak."""
    import psutil

    import llmkit.batch
    from llmkit.providers.function import FunctionLLM

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
        while not done.wait(0.2):
            rss = process.memory_info().rss / 1e6
            peak[0] = max(peak[0], rss)
            written = output.stat().st_size if output.exists() else 0
            ratio = written / max(source.stat().st_size * 1.2, 1)  # records run ~1.2x the input line's size
            for mark, label in list(marks.items()):
                if ratio >= mark and label not in samples:
                    samples[label] = rss
                    marks.pop(mark)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    llm = InProcess(chat_fn=lambda messages, kwargs: "Paris.")
    result = llmkit.batch.run(source, output, llm, concurrency=64, progress=False)
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    samples["100%"] = process.memory_info().rss / 1e6
    samples["peak"] = peak[0]
    samples["lines/s"] = result.succeeded / elapsed
    samples["lines"] = float(result.succeeded)
    for path in (source, output):
        path.unlink()
    return samples


def table(rates: dict[str, float], rss: dict[str, float] | None = None) -> str:
    floor = rates["asyncio + aiohttp (raw floor)"]
    lines = ["| case | requests/s | share of the floor |", "|---|---|---|"]
    lines += [f"| {name} | {rate:.0f} | {rate / floor:.2f}x |" for name, rate in rates.items()]
    if rss:
        lines += [
            "",
            f"Memory over a {rss['lines']:,.0f}-line job ({rss['lines/s']:,.0f} lines/s, in-process model): RSS "
            + ", ".join(f"{k} {rss[k]:.0f} MB" for k in ("start", "10%", "50%", "100%", "peak") if k in rss),
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--memory-lines", type=int, default=1_000_000, help="0 skips the memory case")
    args = parser.parse_args()
    rates = throughput(args.requests, args.concurrency)
    rss = memory(args.memory_lines) if args.memory_lines else None
    print(table(rates, rss))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
