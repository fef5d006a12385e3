"""Leak check: thousands of calls and LLM objects leave open sockets, threads and RSS flat (slow; real HTTP against
the canned server of ``bench/``)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator

import psutil
import pytest
from bench.canned_server import running

from llmkit import ChatMessage, OpenAILike

#: Slow; each test runs on the default backends (urllib3, aiohttp) and on httpx.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("http_backend")]

MESSAGES = [ChatMessage(role="user", content="hi")]


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running() as url:
        yield url


def snapshot(base: str) -> tuple[int, int, float]:
    """Open connections to the server at ``base`` (other tests' servers live in this process too), threads, RSS MB."""
    gc.collect()
    process = psutil.Process()
    port = int(base.rsplit(":", 1)[1].split("/")[0])
    ours = [
        c for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"
    ]
    return len(ours), threading.active_count(), process.memory_info().rss / 1e6


def test_10000_sequential_calls(base: str) -> None:
    llm = OpenAILike(model="bench", api_base=base)
    for _ in range(500):  # warm-up: the pool, caches, allocator arenas
        llm.chat(MESSAGES)
        list(llm.stream_chat(MESSAGES))
    sockets, threads, rss = snapshot(base)
    for i in range(10_000):
        if i % 2:
            llm.chat(MESSAGES)
        else:
            list(llm.stream_chat(MESSAGES))
    after = snapshot(base)
    assert after[0] == sockets == 1  # one pooled connection, reused by chat and streams alike
    assert after[1] <= threads  # (other tests' server threads may end meanwhile)
    assert after[2] - rss < 5, f"RSS grew {after[2] - rss:.1f} MB over 10,000 calls"
    llm.close()
    assert snapshot(base)[0] == 0


def test_1000_concurrent_async_calls(base: str) -> None:
    llm = OpenAILike(model="bench", api_base=base)

    async def burst() -> None:
        answers = await asyncio.gather(*(llm.achat(MESSAGES) for _ in range(1000)))
        assert all(a.content for a in answers)

    async def run() -> list[tuple[int, int, float]]:
        await burst()  # warm-up
        marks = [snapshot(base)]
        for _ in range(3):
            await burst()
            marks.append(snapshot(base))
        await llm.aclose()
        marks.append(snapshot(base))
        return marks

    marks = asyncio.run(run())
    sockets = [m[0] for m in marks[:-1]]
    assert max(sockets[1:]) <= sockets[0]  # later bursts reuse (or shrink) the pool instead of growing it
    assert max(m[1] for m in marks) <= marks[0][1]  # no thread per call
    assert marks[-2][2] - marks[0][2] < 5
    assert marks[-1][0] == 0  # aclose() released every connection


def test_thousands_of_llm_objects(base: str) -> None:
    sockets, threads, rss = snapshot(base)
    for _ in range(2000):
        with OpenAILike(model="bench", api_base=base) as llm:
            llm.chat(MESSAGES)
    for _ in range(2000):
        OpenAILike(model="bench", api_base=base)  # construction does no I/O and holds nothing
    after = snapshot(base)
    assert after[0] == sockets == 0
    assert after[1] <= threads
    assert after[2] - rss < 10


def test_async_llm_objects_dropped_without_aclose(base: str) -> None:
    """An async pool closes when its LLM is collected, even while the loop runs on (a server making an LLM per
    request and never closing it), and the rest when the loop shuts down."""

    async def run() -> tuple[int, int]:
        for _ in range(300):
            llm = OpenAILike(model="bench", api_base=base)
            await llm.achat(MESSAGES)
        del llm
        for _ in range(20):  # collection schedules each pool's closing on the loop
            gc.collect()
            await asyncio.sleep(0.01)
        return snapshot(base)[0], len(asyncio.all_tasks())

    sockets, tasks = asyncio.run(run())
    assert sockets == 0
    assert tasks == 1  # no closing task left behind: only run() itself
    assert snapshot(base)[0] == 0
