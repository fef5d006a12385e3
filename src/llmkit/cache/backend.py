"""The interface every cache store implements, and its statistics.

A store maps a key (a hex digest, see :mod:`llmkit.cache.key`) to bytes, each entry in a namespace and with an
optional time to live. Implement ``get``, ``set``, ``clear`` and ``stats``; the async forms run the sync ones in a
worker thread unless a store has native async I/O.

Example:
    >>> from llmkit.cache import MemoryCache
    >>> cache = MemoryCache()
    >>> cache.set("k", b"v", namespace="default", ttl=None)
    >>> cache.get("k", namespace="default"), cache.stats().entries
    (b'v', 1)
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a store holds (``entries``, ``bytes``) and what this process saw (``hits``, ``misses``)."""

    entries: int
    bytes: int
    hits: int
    misses: int
    location: str


class Cache(ABC):
    """A response store. Thread-safe; stores shared between processes say so (SQLite, Redis)."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    @abstractmethod
    def get(self, key: str, *, namespace: str) -> bytes | None:
        """The bytes stored under ``key`` in ``namespace``, or None when absent or expired."""

    @abstractmethod
    def set(self, key: str, value: bytes, *, namespace: str, ttl: float | None) -> None:
        """Store ``value`` under ``key`` in ``namespace`` for ``ttl`` seconds (None: until evicted)."""

    @abstractmethod
    def clear(self, namespace: str | None = None) -> int:
        """Remove every entry (of ``namespace`` when given); returns how many were removed."""

    @abstractmethod
    def stats(self) -> CacheStats:
        """How much the store holds, and this process's hits and misses."""

    async def aget(self, key: str, *, namespace: str) -> bytes | None:
        """Async :meth:`get`."""
        return await asyncio.to_thread(self.get, key, namespace=namespace)

    async def aset(self, key: str, value: bytes, *, namespace: str, ttl: float | None) -> None:
        """Async :meth:`set`."""
        await asyncio.to_thread(self.set, key, value, namespace=namespace, ttl=ttl)

    def close(self) -> None:  # noqa: B027  (a store with nothing to release needs no override)
        """Release connections and files (the store is unusable afterwards)."""

    def _count(self, value: bytes | None) -> bytes | None:
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value
