"""The response cache: :class:`CachedLLM` (``llm.with_cache(...)``) over a store of your choice.

Stores: :class:`MemoryCache` (in-process LRU), :class:`SQLiteCache` (one file on disk, the default, shared by the
processes of a machine), :class:`RedisCache` (a fleet; extra ``redis``), or your own :class:`Cache`.

Example:
    >>> from llmkit import MockLLM
    >>> from llmkit.cache import MemoryCache
    >>> llm = MockLLM().with_cache(MemoryCache())
    >>> llm.complete("hi").text == llm.complete("hi").text
    True
"""

from llmkit.cache.backend import Cache, CacheStats
from llmkit.cache.llm import CachedLLM, CacheWarning
from llmkit.cache.memory import MemoryCache
from llmkit.cache.sqlite import SQLiteCache, default_path


def __getattr__(name: str) -> object:
    if name == "RedisCache":  # the redis package is an extra: imported only when asked for
        from llmkit.cache.redis import RedisCache

        return RedisCache
    raise AttributeError(f"module 'llmkit.cache' has no attribute {name!r}")


__all__ = [
    "Cache",
    "CacheStats",
    "CacheWarning",
    "CachedLLM",
    "MemoryCache",
    "RedisCache",
    "SQLiteCache",
    "default_path",
]
