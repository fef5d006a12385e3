"""The fleet store: Redis (extra ``redis``), shared by every process and machine that uses the same server.

Entries expire natively (Redis TTL); a namespace is a key prefix, so ``clear(namespace)`` removes just that one.
Give Redis a ``maxmemory`` policy (``allkeys-lru``) to bound its memory.

Example (needs a running redis-server)::

    from llmkit.cache import RedisCache
    cache = RedisCache("redis://127.0.0.1:6379/0")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from llmkit.cache.backend import Cache, CacheStats
from llmkit.errors import CacheError, missing_extra

T = TypeVar("T")


class RedisCache(Cache):
    """Responses in Redis under ``{prefix}{namespace}:{key}``.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS).
        prefix: separates llmkit's keys from others in the same database.
        timeout: seconds for each Redis operation.
    """

    def __init__(self, url: str, prefix: str = "llmkit:cache:", timeout: float = 2.0) -> None:
        super().__init__()
        try:
            import redis
        except ImportError as exc:
            raise missing_extra("redis", "redis") from exc
        self.url, self.prefix = url, prefix
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except self._errors as exc:
            where = self.url.rsplit("@", 1)[-1]  # never the password of redis://user:pass@host
            raise CacheError(
                f"response cache: Redis at {where} failed ({type(exc).__name__}: {exc}); check that redis-server is "
                "running and reachable, or use another cache"
            ) from exc

    def _name(self, key: str, namespace: str) -> str:
        return f"{self.prefix}{namespace}:{key}"

    def get(self, key: str, *, namespace: str) -> bytes | None:
        value = self._guard(lambda: self._redis.get(self._name(key, namespace)))
        return self._count(None if value is None else bytes(value))

    def set(self, key: str, value: bytes, *, namespace: str, ttl: float | None) -> None:
        px = None if ttl is None else max(int(ttl * 1000), 1)
        self._guard(lambda: self._redis.set(self._name(key, namespace), value, px=px))

    def _names(self, namespace: str | None) -> list[bytes]:
        pattern = f"{self.prefix}{namespace if namespace is not None else '*'}:*"
        return self._guard(lambda: list(self._redis.scan_iter(match=pattern, count=1000)))

    def clear(self, namespace: str | None = None) -> int:
        names = self._names(namespace)
        for start in range(0, len(names), 1000):
            self._unlink(names[start : start + 1000])
        return len(names)

    def _unlink(self, names: list[bytes]) -> None:
        self._guard(lambda: self._redis.unlink(*names))

    def stats(self) -> CacheStats:
        names = self._names(None)
        size = 0
        for start in range(0, len(names), 1000):
            pipe = self._redis.pipeline()
            for name in names[start : start + 1000]:
                pipe.strlen(name)
            size += sum(int(n) for n in self._guard(pipe.execute))
        return CacheStats(len(names), size, self.hits, self.misses, self.url.rsplit("@", 1)[-1])

    def close(self) -> None:
        self._redis.close()
