"""CachedLLM against real servers: hits and misses, exact stream replay, nothing stored that did not finish."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from llmkit import CallbackManager, ChatMessage, PromptTemplate, ScriptedLLM
from llmkit.cache import Cache, CachedLLM, CacheStats, CacheWarning, MemoryCache, SQLiteCache
from llmkit.callbacks import CallbackHandler, LLMEvent
from llmkit.errors import CacheError, StreamError
from llmkit.providers.function import FunctionLLM
from llmkit.providers.openai import OpenAILike
from tests.conftest import FAST_RETRIES
from tests.servers.fault import FaultServer

Q = [ChatMessage(content="What is the capital of France?")]


def attempts(server: FaultServer, test_id: str) -> int:
    return len(httpx.get(f"{server.url.removesuffix('/v1')}/_attempts/{test_id}").json())


@pytest.fixture
def counted(fault_server: FaultServer) -> Iterator[tuple[OpenAILike, str]]:
    """An OpenAI-compatible LLM on the fault server whose every request is counted under its own id."""
    test_id = uuid.uuid4().hex
    llm = OpenAILike(
        model="ok", api_base=fault_server.url, default_headers={"x-test-id": test_id}, retry_policy=FAST_RETRIES
    )
    yield llm, test_id
    llm.close()


def test_a_repeated_call_is_answered_from_the_cache(counted: tuple[OpenAILike, str], fault_server: FaultServer) -> None:
    llm, test_id = counted
    cached = llm.with_cache(MemoryCache())
    first, second = cached.chat(Q), cached.chat(Q)
    assert attempts(fault_server, test_id) == 1
    assert second.message.content == first.message.content == "ok"
    assert second.usage is not None
    assert first.usage is not None
    assert second.usage.total_tokens == first.usage.total_tokens  # the answer's tokens, kept
    assert second.usage.provider == "cache"
    assert second.cost.amount == 0  # but a hit costs nothing
    assert second.cost.reason == "answered from the cache"
    assert "cache_hit" not in first.additional_kwargs
    assert second.additional_kwargs["cache_hit"] is True
    cached.chat(Q, temperature=0.5)  # another request
    cached.chat(Q, cache=False)  # the caller said no
    assert attempts(fault_server, test_id) == 3


async def test_sync_and_async_share_entries(counted: tuple[OpenAILike, str], fault_server: FaultServer) -> None:
    llm, test_id = counted
    cached = llm.with_cache(MemoryCache())
    await cached.achat(Q)
    assert cached.chat(Q).additional_kwargs["cache_hit"]
    assert (await cached.achat(Q)).additional_kwargs["cache_hit"]
    assert attempts(fault_server, test_id) == 1


def test_streams_replay_chunk_for_chunk_and_answer_plain_calls(
    counted: tuple[OpenAILike, str], fault_server: FaultServer
) -> None:
    llm, test_id = counted
    cached = llm.with_cache(MemoryCache())
    live = list(cached.stream_chat(Q))
    replay = list(cached.stream_chat(Q))
    assert attempts(fault_server, test_id) == 1
    strip = {"additional_kwargs": {"cache_hit"}}
    assert [c.model_dump(exclude=strip) for c in replay] == [c.model_dump(exclude=strip) for c in live]
    assert [c.delta for c in replay] == ["a", "b", "c"]
    assert all(c.additional_kwargs["cache_hit"] for c in replay)
    plain = cached.chat(Q)  # the stream's last chunk is the whole answer
    assert plain.message.content == "abc"
    assert plain.delta is None
    assert attempts(fault_server, test_id) == 1


async def test_async_streams_replay_and_record(counted: tuple[OpenAILike, str], fault_server: FaultServer) -> None:
    llm, test_id = counted
    cached = llm.with_cache(MemoryCache())
    live = [c.delta async for c in await cached.astream_chat(Q)]
    replay = [c.delta async for c in await cached.astream_chat(Q)]
    assert live == replay == ["a", "b", "c"]
    assert [c.delta for c in cached.stream_chat(Q)] == ["a", "b", "c"]
    assert attempts(fault_server, test_id) == 1


def test_a_plain_answer_serves_a_stream_only_when_allowed(
    counted: tuple[OpenAILike, str], fault_server: FaultServer
) -> None:
    llm, test_id = counted
    store = MemoryCache()
    llm.with_cache(store).chat(Q)
    assert [c.delta for c in llm.with_cache(store).stream_chat(Q)] == ["a", "b", "c"]  # a miss: streamed for real
    assert attempts(fault_server, test_id) == 2
    other = MemoryCache()
    llm.with_cache(other).chat(Q)
    chunks = list(llm.with_cache(other, replay_answer_as_stream=True).stream_chat(Q))
    assert [(c.delta, c.message.content) for c in chunks] == [("ok", "ok")]
    assert attempts(fault_server, test_id) == 3


def test_a_broken_stream_is_never_stored(fault_server: FaultServer) -> None:
    test_id = uuid.uuid4().hex
    llm = OpenAILike(model="stream-drop", api_base=fault_server.url, default_headers={"x-test-id": test_id})
    store = MemoryCache()
    cached = llm.with_cache(store)
    for _ in range(2):
        with pytest.raises(StreamError):
            list(cached.stream_chat(Q))
    assert store.stats().entries == 0
    assert attempts(fault_server, test_id) == 2


def test_a_stream_closed_early_is_never_stored(counted: tuple[OpenAILike, str]) -> None:
    llm, _ = counted
    store = MemoryCache()
    stream = llm.with_cache(store).stream_chat(Q)
    next(stream)
    stream.close()
    assert store.stats().entries == 0


async def test_a_cancelled_async_stream_is_never_stored(counted: tuple[OpenAILike, str]) -> None:
    llm, _ = counted
    store = MemoryCache()
    stream = await llm.with_cache(store).astream_chat(Q)
    await stream.__anext__()
    await stream.aclose()
    assert store.stats().entries == 0


def test_ttl_per_cache_and_per_call(counted: tuple[OpenAILike, str], fault_server: FaultServer) -> None:
    llm, test_id = counted
    cached = llm.with_cache(MemoryCache(), ttl=0.1)
    cached.chat(Q)
    cached.chat(Q, cache_ttl=60)  # a hit: the entry keeps its ttl
    time.sleep(0.15)
    cached.chat(Q, cache_ttl=60)  # expired: a miss, stored for a minute
    time.sleep(0.15)
    assert cached.chat(Q).additional_kwargs["cache_hit"]
    assert attempts(fault_server, test_id) == 2


def test_namespaces_separate_entries(counted: tuple[OpenAILike, str], fault_server: FaultServer) -> None:
    llm, test_id = counted
    store = MemoryCache()
    llm.with_cache(store, namespace="a").chat(Q)
    llm.with_cache(store, namespace="b").chat(Q)
    assert llm.with_cache(store, namespace="a").chat(Q).additional_kwargs["cache_hit"]
    assert attempts(fault_server, test_id) == 2
    assert store.clear("a") == 1


def test_single_flight_makes_one_upstream_call_for_concurrent_requests() -> None:
    calls = 0
    gate = threading.Event()

    def slow(messages: list[Any], kwargs: dict[str, Any]) -> str:
        nonlocal calls
        calls += 1
        gate.wait(5)
        return "answer"

    cached = FunctionLLM(chat_fn=slow).with_cache(MemoryCache())
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(str(cached.chat(Q).message.content))) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert calls == 1
    assert results == ["answer"] * 8


async def test_async_single_flight() -> None:
    calls = 0

    def answer(messages: list[Any], kwargs: dict[str, Any]) -> str:
        nonlocal calls
        calls += 1
        time.sleep(0.2)
        return "answer"

    cached = FunctionLLM(chat_fn=answer).with_cache(MemoryCache())
    results = await asyncio.gather(*(cached.achat(Q) for _ in range(10)))
    assert calls == 1
    assert {r.message.content for r in results} == {"answer"}
    uncoordinated = FunctionLLM(chat_fn=answer).with_cache(MemoryCache(), single_flight=False)
    calls = 0
    await asyncio.gather(*(uncoordinated.achat(Q) for _ in range(3)))
    assert calls == 3


def test_a_failed_call_is_not_stored_and_followers_retry() -> None:
    answers = iter([RuntimeError("boom"), "second"])

    def flaky(messages: list[Any], kwargs: dict[str, Any]) -> str:
        item = next(answers)
        if isinstance(item, Exception):
            raise item
        return item

    cached = FunctionLLM(chat_fn=flaky).with_cache(MemoryCache())
    with pytest.raises(RuntimeError):
        cached.chat(Q)
    assert cached.chat(Q).message.content == "second"


class Recorder(CallbackHandler):
    def __init__(self) -> None:
        self.ended: list[LLMEvent] = []
        self.tokens: list[str] = []

    def on_llm_end(self, event: LLMEvent) -> None:
        self.ended.append(event)

    def on_llm_token(self, event: LLMEvent, delta: str) -> None:
        self.tokens.append(delta)


def test_hits_are_visible_to_the_wrapped_llms_callbacks() -> None:
    recorder = Recorder()
    llm = ScriptedLLM(callback_manager=CallbackManager([recorder]))
    cached = llm.with_cache(MemoryCache())
    cached.chat(Q)
    cached.chat(Q)
    list(cached.stream_chat([ChatMessage(content="x y")]))
    recorder.tokens.clear()
    list(cached.stream_chat([ChatMessage(content="x y")]))
    assert len(recorder.ended) == 4
    assert recorder.ended[1].response.additional_kwargs["cache_hit"]
    assert recorder.ended[3].response.additional_kwargs["cache_hit"]
    assert recorder.tokens  # a replayed stream reports its tokens like a live one


def test_structured_predict_is_cached() -> None:
    class City(BaseModel):
        name: str
        population: int

    calls = 0

    def answer(messages: list[Any], kwargs: dict[str, Any]) -> str:
        nonlocal calls
        calls += 1
        return '{"name": "Paris", "population": 2100000}'

    cached = FunctionLLM(chat_fn=answer).with_cache(MemoryCache())
    prompt = PromptTemplate("Which city? {q}")
    first = cached.structured_predict(City, prompt, q="capital of France")
    again = cached.structured_predict(City, prompt, q="capital of France")
    assert first == again == City(name="Paris", population=2100000)
    assert calls == 1


class BrokenStore(Cache):
    def get(self, key: str, *, namespace: str) -> bytes | None:
        raise CacheError("response cache: store is down; fix it")

    def set(self, key: str, value: bytes, *, namespace: str, ttl: float | None) -> None:
        raise CacheError("response cache: store is down; fix it")

    def clear(self, namespace: str | None = None) -> int:
        return 0

    def stats(self) -> CacheStats:
        return CacheStats(0, 0, 0, 0, "broken")


def test_a_failing_store_raises_or_warns_and_passes_through() -> None:
    with pytest.raises(CacheError, match="store is down"):
        ScriptedLLM().with_cache(BrokenStore()).chat(Q)
    with pytest.warns(CacheWarning, match="uncached"):
        response = ScriptedLLM().with_cache(BrokenStore(), on_error="warn").chat(Q)
    assert response.message.content


def test_a_damaged_entry_is_a_miss_never_a_wrong_answer() -> None:
    store = MemoryCache()
    cached = FunctionLLM(chat_fn=lambda m, k: "fresh").with_cache(store)
    cached.chat(Q)
    for key in list(store._entries):
        damaged = b'{"format": 1, "endpoint": "chat", "stream": false, "chunks": [{"bogus": 1}]}'
        store.set(key, damaged, namespace="default", ttl=None)
    assert cached.chat(Q).message.content == "fresh"
    assert cached.chat(Q).additional_kwargs["cache_hit"]  # the answer replaced the damaged entry


def test_the_on_disk_cache_persists_across_instances(
    tmp_path: Path, counted: tuple[OpenAILike, str], fault_server: FaultServer
) -> None:
    llm, test_id = counted
    llm.with_cache(SQLiteCache(tmp_path / "r.sqlite")).chat(Q)
    list(llm.with_cache(SQLiteCache(tmp_path / "r.sqlite")).stream_chat([ChatMessage(content="s")]))
    again = llm.with_cache(SQLiteCache(tmp_path / "r.sqlite"))
    assert again.chat(Q).additional_kwargs["cache_hit"]
    assert [c.delta for c in again.stream_chat([ChatMessage(content="s")])] == ["a", "b", "c"]
    assert attempts(fault_server, test_id) == 2


def test_the_default_store_is_the_on_disk_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMKIT_CACHE_DIR", str(tmp_path))
    cached = ScriptedLLM().with_cache()
    cached.complete("hi")
    assert isinstance(cached.cache, SQLiteCache)
    assert (tmp_path / "responses.sqlite").exists()


def test_the_embedded_model_is_cached_with_its_settings(local_llm: Any) -> None:
    store = MemoryCache()
    cached = local_llm.with_cache(store)
    start = time.perf_counter()
    first = cached.complete("The capital of France is", max_tokens=8)
    miss = time.perf_counter() - start
    start = time.perf_counter()
    again = cached.complete("The capital of France is", max_tokens=8)
    hit = time.perf_counter() - start
    assert again.text == first.text
    assert again.additional_kwargs["cache_hit"]
    assert hit < miss
    assert not cached.complete("The capital of France is", max_tokens=4).additional_kwargs.get("cache_hit")


def test_cached_llm_passes_the_wrapper_conformance_of_the_wrapped_model() -> None:
    cached = CachedLLM(llm=ScriptedLLM(), cache=MemoryCache())
    assert cached.metadata == cached.llm.metadata
    assert cached.capabilities == cached.llm.capabilities


def test_a_hit_costs_nothing_in_cost_trackers(usage_server: Any) -> None:
    pytest.importorskip("genai_prices", reason="prices need the 'cost' extra: pip install 'llmkit[cost]'")
    from llmkit import OpenAI
    from llmkit.usage import CostTracker

    tracker = CostTracker()
    callbacks = CallbackManager([tracker])
    llm = OpenAI(model="gpt-4o", api_base=usage_server.url, api_key="sk-test", callback_manager=callbacks)
    cached = llm.with_cache(MemoryCache())
    cached.chat(Q)
    cached.chat(Q)
    list(cached.stream_chat([ChatMessage(content="s")]))
    list(cached.stream_chat([ChatMessage(content="s")]))
    # gpt-4o from the usage server, one-shot: 1,000 uncached input at $2.50, 200 cached at $1.25, 300 out at $10 /M.
    assert float(tracker.total_cost) == pytest.approx(2 * 0.00575)  # two answers paid for, two hits free
