"""An in-process LRU store, bounded by entries and by bytes.

Example:
    >>> from llmkit.cache import MemoryCache
    >>> cache = MemoryCache(max_entries=2)
    >>> for key in "abc":
    ...     cache.set(key, key.encode(), namespace="default", ttl=None)
    >>> cache.get("a", namespace="default"), cache.get("c", namespace="default")
    (None, b'c')
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from llmkit.cache.backend import Cache, CacheStats
from llmkit.errors import ConfigurationError


class MemoryCache(Cache):
    """Keeps the most recently used entries, at most ``max_entries`` of them and ``max_bytes`` in all.

    An entry larger than ``max_bytes`` is not stored. Lost when the process ends; use :class:`SQLiteCache` to keep
    answers across runs.
    """

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 256 * 2**20) -> None:
        super().__init__()
        if max_entries < 1 or max_bytes < 1:
            raise ConfigurationError("MemoryCache: max_entries and max_bytes must be at least 1")
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[str, tuple[bytes, str, float | None]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, *, namespace: str) -> bytes | None:
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return self._count(None)
            value, _, expires = item
            if expires is not None and expires <= time.monotonic():
                self._remove(key)
                return self._count(None)
            self._entries.move_to_end(key)
            return self._count(value)

    async def aget(self, key: str, *, namespace: str) -> bytes | None:
        return self.get(key, namespace=namespace)  # never blocks: no thread hop

    def set(self, key: str, value: bytes, *, namespace: str, ttl: float | None) -> None:
        if len(value) > self.max_bytes:
            return
        expires = None if ttl is None else time.monotonic() + ttl
        with self._lock:
            if key in self._entries:
                self._remove(key)
            self._entries[key] = (value, namespace, expires)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._remove(next(iter(self._entries)))

    async def aset(self, key: str, value: bytes, *, namespace: str, ttl: float | None) -> None:
        self.set(key, value, namespace=namespace, ttl=ttl)

    def _remove(self, key: str) -> None:
        value, _, _ = self._entries.pop(key)
        self._bytes -= len(value)

    def clear(self, namespace: str | None = None) -> int:
        with self._lock:
            doomed = [k for k, (_, ns, _) in self._entries.items() if namespace is None or ns == namespace]
            for key in doomed:
                self._remove(key)
            return len(doomed)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self._bytes, self.hits, self.misses, "memory")
