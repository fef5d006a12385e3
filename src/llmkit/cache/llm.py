"""CachedLLM: answers a repeated request from a cache, as a wrapper around any LLM (``llm.with_cache(...)``).

What is cached: one-shot answers and complete streams (chunk for chunk). A stream that failed, was cut, or was closed
early by the caller is never stored. A cached stream answers a plain call too; a plain answer is replayed as a
one-chunk stream only with ``replay_answer_as_stream=True``. A request with nothing canonical to key it by (an
arbitrary object among its arguments) goes through uncached.

A hit is marked (``response.additional_kwargs["cache_hit"] is True``; its usage keeps the original token counts and
names the provider ``"cache"``, so ``response.cost`` and cost trackers count it as free) and is reported to the
wrapped LLM's callbacks like a call, so tracing and cost accounting see it.

Per call: ``cache=False`` skips the cache (no read, no write); ``cache_ttl=seconds`` sets this entry's lifetime.

Example:
    >>> from llmkit import MockLLM
    >>> from llmkit.cache import CachedLLM, MemoryCache
    >>> llm = CachedLLM(llm=MockLLM(), cache=MemoryCache())
    >>> first = llm.complete("hello")
    >>> again = llm.complete("hello")
    >>> again.text == first.text, again.additional_kwargs["cache_hit"]
    (True, True)
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Any, Literal, cast

from pydantic import Field, PrivateAttr

from llmkit.cache.backend import Cache
from llmkit.cache.entry import CorruptEntry, Entry, Recording
from llmkit.cache.key import RequestKey, Uncacheable
from llmkit.errors import CacheError
from llmkit.types import ChatResponse
from llmkit.usage.cost import CACHE_PROVIDER
from llmkit.wrapper import LLMCall, Response, WrapperLLM


class CacheWarning(UserWarning):
    """The cache could not be used for a call (``on_error="warn"``); the call went to the LLM."""


class _Flights:
    """Single flight: the first caller of a key leads; later callers of that key wait until it is done (its call is
    bounded by its own timeouts), then read what it stored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[Any, Any] = {}

    def _claim(self, slot: Any, event: Callable[[], Any]) -> tuple[Any, bool]:
        """The slot's event (a new one from ``event()`` when free) and whether this caller leads."""
        with self._lock:
            done = self._waiting.get(slot)
            if done is not None:
                return done, False
            done = self._waiting[slot] = event()
            return done, True

    def _release(self, slot: Any, done: Any) -> None:
        with self._lock:
            del self._waiting[slot]
        done.set()

    @contextmanager
    def join(self, key: str) -> Iterator[bool]:
        """``True`` for the leader."""
        done, leader = self._claim(key, threading.Event)
        if not leader:
            done.wait()
            yield False
            return
        try:
            yield True
        finally:
            self._release(key, done)

    @asynccontextmanager
    async def ajoin(self, key: str) -> AsyncIterator[bool]:
        """Async :meth:`join`; an ``asyncio.Event`` belongs to one loop, so flights are per loop."""
        slot = (id(asyncio.get_running_loop()), key)
        done, leader = self._claim(slot, asyncio.Event)
        if not leader:
            await done.wait()
            yield False
            return
        try:
            yield True
        finally:
            self._release(slot, done)


def _as_hit(response: Response) -> Response:
    """A stored answer served again: it cost nothing this time (see :data:`llmkit.usage.cost.CACHE_PROVIDER`)."""
    if response.usage is not None:
        response.usage.provider = CACHE_PROVIDER
    return response


def _default_cache() -> Cache:
    from llmkit.cache.sqlite import SQLiteCache

    return SQLiteCache()


class CachedLLM(WrapperLLM):
    """Answers repeated requests from ``cache`` (default: the on-disk :class:`~llmkit.cache.SQLiteCache`).

    Args:
        llm: the wrapped LLM.
        cache: the store: :class:`~llmkit.cache.MemoryCache`, :class:`~llmkit.cache.SQLiteCache`,
            :class:`~llmkit.cache.RedisCache`, or your own :class:`~llmkit.cache.Cache`.
        namespace: separates entries (``llmkit cache clear --namespace``); part of the key.
        ttl: seconds an entry lives (None: until evicted); ``cache_ttl=`` per call overrides it.
        single_flight: concurrent identical one-shot calls in this process make one upstream call.
        replay_answer_as_stream: let a cached plain answer serve a stream, as one chunk.
        on_error: ``"raise"`` a :class:`~llmkit.errors.CacheError` when the store fails, or ``"warn"``
            (:class:`CacheWarning`) and call the LLM uncached.
    """

    cache: Cache = Field(default_factory=_default_cache, exclude=True)
    namespace: str = "default"
    ttl: float | None = Field(default=None, gt=0)
    single_flight: bool = True
    replay_answer_as_stream: bool = False
    on_error: Literal["raise", "warn"] = "raise"

    _key: RequestKey | None = PrivateAttr(default=None)
    _flights: _Flights = PrivateAttr(default_factory=_Flights)
    _decoded: tuple[bytes, Entry] | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "cached_llm"

    # -- the request's key and control arguments -----------------------------------------------------------------------

    def _prepare(self, call: LLMCall) -> tuple[LLMCall, str | None, float | None]:
        """The call without the cache's own arguments, its key (None: do not cache), and the entry's ttl."""
        use, ttl = True, self.ttl
        if "cache" in call.kwargs or "cache_ttl" in call.kwargs:
            kwargs = dict(call.kwargs)
            use, ttl = kwargs.pop("cache", True), kwargs.pop("cache_ttl", ttl)
            call = replace(call, kwargs=kwargs)
        if use is False:
            return call, None, None
        keys = self._key  # one private-attribute read: pydantic routes each through __getattr__
        if keys is None or keys.llm is not self.llm:
            keys = self._key = RequestKey(self.llm)
        try:
            return call, keys(call, self.namespace), ttl
        except Uncacheable:
            return call, None, None

    def _failed(self, exc: CacheError) -> None:
        if self.on_error == "raise":
            raise exc
        warnings.warn(f"{exc}; the call went to the LLM uncached", CacheWarning, stacklevel=4)

    # -- reading and writing -------------------------------------------------------------------------------------------

    def _entry(self, data: bytes | None) -> Entry | None:
        if data is None:
            return None
        last = self._decoded
        if last is not None and last[0] is data:  # the memory store hands back the same bytes: decoded already
            return last[1]
        try:
            entry = Entry.decode(data)
        except CorruptEntry:
            return None  # never a wrong answer: a damaged entry is a miss, and the call's answer replaces it
        self._decoded = (data, entry)
        return entry

    def _lookup(self, key: str) -> Entry | None:
        try:
            return self._entry(self.cache.get(key, namespace=self.namespace))
        except CacheError as exc:
            self._failed(exc)
            return None

    async def _alookup(self, key: str) -> Entry | None:
        try:
            return self._entry(await self.cache.aget(key, namespace=self.namespace))
        except CacheError as exc:
            self._failed(exc)
            return None

    def _store(self, key: str, recording: Recording, ttl: float | None) -> None:
        try:
            self.cache.set(key, recording.encode(), namespace=self.namespace, ttl=ttl)
        except CacheError as exc:
            self._failed(exc)

    async def _astore(self, key: str, recording: Recording, ttl: float | None) -> None:
        try:
            await self.cache.aset(key, recording.encode(), namespace=self.namespace, ttl=ttl)
        except CacheError as exc:
            self._failed(exc)

    def _answer(self, call: LLMCall, entry: Entry | None) -> Response | None:
        """The cached answer to ``call``, reported to the wrapped LLM's callbacks; None for a miss."""
        if entry is None:
            return None
        try:
            response: Any = _as_hit(entry.answer(cache_hit=True))
        except CorruptEntry:
            return None
        with self.llm._event(call.endpoint, call.messages if call.is_chat else call.prompt, call.kwargs) as event:
            return cast(Response, event.done(response))

    def _replayable(self, entry: Entry | None) -> list[Response] | None:
        if entry is None or not (entry.stream or self.replay_answer_as_stream):
            return None
        try:
            chunks = [_as_hit(chunk) for chunk in entry.responses(cache_hit=True)]
        except CorruptEntry:
            return None
        if not entry.stream:  # a plain answer as one chunk: its delta is the whole text
            whole = chunks[0]
            whole.delta = (whole.message.content if isinstance(whole, ChatResponse) else whole.text) or ""
        return chunks

    # -- one-shot calls ----------------------------------------------------------------------------------------------

    def _call(self, call: LLMCall) -> Response:
        call, key, ttl = self._prepare(call)
        if key is None:
            return call.invoke(self.llm)
        hit = self._answer(call, self._lookup(key))
        if hit is not None:
            return hit
        if not self.single_flight:
            return self._fill(call, key, ttl)
        with self._flights.join(key) as leader:
            hit = None if leader else self._answer(call, self._lookup(key))
            return hit if hit is not None else self._fill(call, key, ttl)

    def _fill(self, call: LLMCall, key: str, ttl: float | None) -> Response:
        response = call.invoke(self.llm)
        recording = Recording(call.endpoint, stream=False)
        recording.add(response)
        self._store(key, recording, ttl)
        return response

    async def _acall(self, call: LLMCall) -> Response:
        call, key, ttl = self._prepare(call)
        if key is None:
            return await call.ainvoke(self.llm)
        hit = self._answer(call, await self._alookup(key))
        if hit is not None:
            return hit
        if not self.single_flight:
            return await self._afill(call, key, ttl)
        async with self._flights.ajoin(key) as leader:
            hit = None if leader else self._answer(call, await self._alookup(key))
            return hit if hit is not None else await self._afill(call, key, ttl)

    async def _afill(self, call: LLMCall, key: str, ttl: float | None) -> Response:
        response = await call.ainvoke(self.llm)
        recording = Recording(call.endpoint, stream=False)
        recording.add(response)
        await self._astore(key, recording, ttl)
        return response

    # -- streams -------------------------------------------------------------------------------------------------------

    def _stream(self, call: LLMCall) -> Generator[Response, None, None]:
        call, key, ttl = self._prepare(call)
        if key is None:
            return call.stream(self.llm)
        chunks = self._replayable(self._lookup(key))
        if chunks is not None:
            payload = call.messages if call.is_chat else call.prompt
            replay: Iterator[Any] = iter(chunks)
            return self.llm._observed(self.llm._start(call.endpoint, payload, call.kwargs), replay)
        return self._recorded(call, key, ttl, call.stream(self.llm))

    def _recorded(
        self, call: LLMCall, key: str, ttl: float | None, stream: Generator[Response, None, None]
    ) -> Generator[Response, None, None]:
        recording = Recording(call.endpoint, stream=True)
        try:
            for chunk in stream:
                recording.add(chunk)
                yield chunk
        finally:
            stream.close()  # a caller that stops early ends the inner stream (and its event) too
        if recording.chunks:  # reached only when the stream ended as the service said it should
            self._store(key, recording, ttl)

    async def _astream(self, call: LLMCall) -> AsyncGenerator[Response, None]:
        call, key, ttl = self._prepare(call)
        if key is None:
            return await call.astream(self.llm)
        chunks = self._replayable(await self._alookup(key))
        if chunks is not None:
            payload = call.messages if call.is_chat else call.prompt
            areplay: AsyncIterator[Any] = _aiter(chunks)
            return self.llm._aobserve(self.llm._start(call.endpoint, payload, call.kwargs), areplay)
        return self._arecorded(call, key, ttl, await call.astream(self.llm))

    async def _arecorded(
        self, call: LLMCall, key: str, ttl: float | None, stream: AsyncGenerator[Response, None]
    ) -> AsyncGenerator[Response, None]:
        recording = Recording(call.endpoint, stream=True)
        try:
            async for chunk in stream:
                recording.add(chunk)
                yield chunk
        finally:
            await stream.aclose()
        if recording.chunks:
            await self._astore(key, recording, ttl)


async def _aiter(chunks: list[Response]) -> AsyncGenerator[Response, None]:
    for chunk in chunks:
        yield chunk


__all__ = ["CacheWarning", "CachedLLM"]
