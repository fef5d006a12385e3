"""The response cache: what a hit costs per call, from memory and from the SQLite file, beside the raw-client
floor (raw httpx against the canned loopback server) and an uncached llmkit call, in one interleaved run.

Run: .venv/bin/python -m bench.cache [--calls 2000] [--rounds 5]
Targets: a hit costs <= 50 µs from memory and <= 300 µs from SQLite.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench._main import run
from bench.canned_server import running
from bench.http import raw_case

MEMORY_TARGET_US, SQLITE_TARGET_US = 50.0, 300.0


def measure(calls: int = 2000, rounds: int = 5) -> dict[str, float]:
    """µs per call of each case (its best round)."""
    from llmkit import ChatMessage, OpenAILike
    from llmkit.cache import MemoryCache, SQLiteCache

    messages = [ChatMessage(role="user", content="What is the capital of France?")]
    streamed = [ChatMessage(role="user", content="Name the capital of France.")]  # its own entry: a stream's
    with running() as base, tempfile.TemporaryDirectory() as folder:
        bare = OpenAILike(model="bench", api_base=base)
        in_memory = OpenAILike(model="bench", api_base=base).with_cache(MemoryCache())
        on_disk = OpenAILike(model="bench", api_base=base).with_cache(SQLiteCache(Path(folder) / "bench.sqlite"))
        cases: dict[str, Callable[[], object]] = {
            "raw httpx": raw_case(base).chat,
            "llmkit, uncached": lambda: bare.chat(messages),
            "llmkit, memory hit": lambda: in_memory.chat(messages),
            "llmkit, SQLite hit": lambda: on_disk.chat(messages),
            "llmkit, memory hit, 16-chunk stream": lambda: list(in_memory.stream_chat(streamed)),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for call in cases.values():
            for _ in range(50):  # warm up; fills both caches
                call()
        per_round = max(calls // rounds, 1)
        for _ in range(rounds):
            for name, call in cases.items():
                gc.collect()  # the previous case's garbage is not this one's cost
                start = time.perf_counter()
                for _ in range(per_round):
                    call()
                samples[name].append((time.perf_counter() - start) / per_round * 1e6)
        on_disk.cache.close()
    # The best round of each case: on a shared machine, noise only ever adds time, and hits are short enough for a
    # scheduler blip to double a round's mean.
    return {name: min(values) for name, values in samples.items()}


def table(result: dict[str, float]) -> str:
    floor = result["raw httpx"]
    lines = ["| case | µs/call | ratio to the floor |", "|---|---|---|"]
    lines += [f"| {name} | {us:.0f} | {us / floor:.3f}x |" for name, us in result.items()]
    memory, disk = result["llmkit, memory hit"], result["llmkit, SQLite hit"]
    lines += [
        "",
        f"A hit from memory: {memory:.0f} µs (target <= {MEMORY_TARGET_US:.0f}: "
        f"{'pass' if memory <= MEMORY_TARGET_US else 'FAIL'}); from SQLite: {disk:.0f} µs (target <= "
        f"{SQLITE_TARGET_US:.0f}: {'pass' if disk <= SQLITE_TARGET_US else 'FAIL'}).",
    ]
    return "\n".join(lines)


def main() -> int:
    return run(__doc__, measure, table)


if __name__ == "__main__":
    raise SystemExit(main())
