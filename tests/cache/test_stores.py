"""The stores: memory (bounded), SQLite (shared by processes, capped, refuses foreign or damaged files), Redis."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from llmkit.cache import MemoryCache, SQLiteCache
from llmkit.errors import CacheError, ConfigurationError

NS = "default"


def test_memory_is_bounded_by_entries_and_bytes() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=10_000)
    for i in range(1_000):
        cache.set(f"k{i}", b"x" * 50, namespace=NS, ttl=None)
    assert cache.stats().entries == 100
    big = MemoryCache(max_entries=1_000, max_bytes=10_000)
    for i in range(1_000):
        big.set(f"k{i}", b"x" * 1_000, namespace=NS, ttl=None)
    assert big.stats().bytes <= 10_000
    assert big.get("k999", namespace=NS) is not None  # the newest stay
    assert big.get("k0", namespace=NS) is None


def test_memory_lru_ttl_namespaces() -> None:
    cache = MemoryCache(max_entries=2)
    cache.set("a", b"1", namespace=NS, ttl=None)
    cache.set("b", b"2", namespace="other", ttl=None)
    cache.get("a", namespace=NS)  # a is now the most recent: b goes first
    cache.set("c", b"3", namespace=NS, ttl=0.05)
    assert cache.get("b", namespace="other") is None
    assert cache.get("a", namespace=NS) == b"1"
    time.sleep(0.06)
    assert cache.get("c", namespace=NS) is None
    cache.set("d", b"4", namespace="other", ttl=None)
    assert cache.clear("other") == 1
    assert cache.get("a", namespace=NS) == b"1"
    with pytest.raises(ConfigurationError):
        MemoryCache(max_entries=0)


def test_sqlite_round_trip_ttl_namespaces_and_stats(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.sqlite")
    cache.set("a", b"1", namespace="x", ttl=None)
    cache.set("b", b"22", namespace="y", ttl=0.05)
    assert cache.get("a", namespace="x") == b"1"
    time.sleep(0.06)
    assert cache.get("b", namespace="y") is None
    cache.set("c", b"333", namespace="y", ttl=None)
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.hits, stats.misses) == (2, 4, 1, 1)
    assert cache.clear("y") == 1
    assert cache.get("a", namespace="x") == b"1"
    cache.close()
    assert SQLiteCache(tmp_path / "c.sqlite").get("a", namespace="x") == b"1"  # persisted


def test_sqlite_size_cap_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.sqlite", max_bytes=100_000)
    for i in range(500):
        cache.set(f"k{i}", b"x" * 1_000, namespace=NS, ttl=None)
    assert cache.stats().bytes <= 100_000 + 64 * 1_000  # checked every 64 writes
    assert cache.get("k499", namespace=NS) is not None
    assert cache.get("k0", namespace=NS) is None


def test_sqlite_refuses_damaged_foreign_and_newer_files(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError, match=r"damaged.sqlite.*delete it"):
        SQLiteCache(damaged)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(CacheError, match="another program"):
        SQLiteCache(foreign)
    newer = tmp_path / "newer.sqlite"
    SQLiteCache(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(CacheError, match="newer llmkit"):
        SQLiteCache(newer)


def _echo(messages: list[Any], kwargs: dict[str, Any]) -> str:
    return f"answer to {messages[-1].content}"


def _caller(path: str, worker: int, count: int) -> None:
    """500 calls through CachedLLM on the shared file: half this worker's own prompts, half shared by all four."""
    from llmkit import ChatMessage
    from llmkit.providers.function import FunctionLLM

    llm = FunctionLLM(chat_fn=_echo).with_cache(SQLiteCache(path))
    for i in range(count):
        prompt = f"own {worker} {i}" if i % 2 else f"shared {i}"
        assert llm.chat([ChatMessage(content=prompt)]).message.content == f"answer to {prompt}"


def test_four_processes_share_one_file_without_error_or_loss(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    SQLiteCache(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_caller, args=(path, w, 500)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    assert SQLiteCache(path).stats().entries == 4 * 250 + 250  # every own prompt, and each shared one once
    from llmkit import ChatMessage
    from llmkit.providers.function import FunctionLLM

    llm = FunctionLLM(chat_fn=_echo).with_cache(SQLiteCache(path))
    for w in range(4):
        for i in range(1, 500, 2):
            response = llm.chat([ChatMessage(content=f"own {w} {i}")])
            assert response.message.content == f"answer to own {w} {i}"
            assert response.additional_kwargs["cache_hit"]  # nothing was lost: every answer comes from the file


def _redis_client(url: str, worker: int) -> None:
    """Answers its own prompt through CachedLLM, then waits until the other process's answer is a hit here."""
    from llmkit import ChatMessage
    from llmkit.cache import RedisCache
    from llmkit.providers.function import FunctionLLM

    llm = FunctionLLM(chat_fn=_echo).with_cache(RedisCache(url, prefix="llmkit:test-shared:"))
    assert "cache_hit" not in llm.chat([ChatMessage(content=f"from {worker}")]).additional_kwargs
    deadline = time.monotonic() + 20
    while llm.cache.get(_key_of(llm, f"from {1 - worker}"), namespace=NS) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert llm.chat([ChatMessage(content=f"from {1 - worker}")]).additional_kwargs["cache_hit"]


def _key_of(llm: Any, prompt: str) -> str:
    from llmkit import ChatMessage
    from llmkit.cache.key import request_key
    from llmkit.wrapper import LLMCall

    return request_key(llm.llm, LLMCall.chat([ChatMessage(content=prompt)], {}), NS)


def test_redis_is_shared_by_processes_and_expires_natively(redis_url: str) -> None:
    from llmkit.cache import RedisCache

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_redis_client, args=(redis_url, w)) for w in range(2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
    assert [p.exitcode for p in workers] == [0, 0]
    cache = RedisCache(redis_url, prefix="llmkit:test-shared:")
    assert cache.stats().entries == 2
    cache.set("short", b"x", namespace="ttl", ttl=0.05)
    time.sleep(0.1)
    assert cache.get("short", namespace="ttl") is None
    cache.set("n", b"x", namespace="gone", ttl=None)
    assert cache.clear("gone") == 1
    assert cache.clear() == 2


def test_unreachable_redis_is_a_typed_error_naming_the_fix() -> None:
    pytest.importorskip("redis", reason="the 'redis' extra is not installed: pip install 'llmkit[redis]'")
    from llmkit.cache import RedisCache

    cache = RedisCache("redis://:hunter2@127.0.0.1:9/0", timeout=0.5)
    with pytest.raises(CacheError, match="redis-server is running") as info:
        cache.get("k", namespace=NS)
    assert "hunter2" not in str(info.value)
