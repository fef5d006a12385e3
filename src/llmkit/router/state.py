"""What a router knows of its deployments at this moment: cooldowns, calls in flight, requests and tokens this
window, recent failures. :class:`LocalState` keeps it in this process; :class:`RedisState` keeps it in Redis, with
atomic scripts, so every process using the same Redis (and namespace) shares one set of limits and cooldowns.

Cooldowns are circuit breakers: a deployment cooled down is skipped until the cooldown ends; then it is *half
open*: one caller gets it as a probe (the others keep skipping it for ``probe_seconds``); a success closes the
breaker, a failure cools it down again.

Example:
    >>> state = LocalState(window_seconds=60)
    >>> state.try_acquire("a", rpm=1, tpm=None, max_parallel=None)
    True
    >>> state.try_acquire("a", rpm=1, tpm=None, max_parallel=None)
    False
"""

from __future__ import annotations

import functools
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from llmkit.errors import RouterStateError, missing_extra

P = ParamSpec("P")
T = TypeVar("T")


class RouterState(ABC):
    """The state every routing decision reads; written atomically per operation."""

    def __init__(self, window_seconds: float = 60.0, probe_seconds: float = 30.0) -> None:
        self.window_seconds = window_seconds
        self.probe_seconds = probe_seconds

    def _window(self) -> int:
        return int(time.time() // self.window_seconds)

    def seconds_to_next_window(self) -> float:
        """Seconds until the per-window request and token counts start again."""
        return self.window_seconds - (time.time() % self.window_seconds)

    @abstractmethod
    def cool_down(self, name: str, seconds: float) -> None:
        """Skip ``name`` for ``seconds``; afterwards it is half open."""

    @abstractmethod
    def cooldown_remaining(self, name: str) -> float:
        """Seconds left of ``name``'s cooldown (0 when it may be called)."""

    @abstractmethod
    def claim(self, name: str) -> bool:
        """Whether this caller may call ``name`` now: not cooling down, and if half open, this caller is the probe."""

    @abstractmethod
    def recover(self, name: str) -> None:
        """A call to ``name`` succeeded: close its breaker and forget its failures."""

    @abstractmethod
    def record_failure(self, name: str, window: float) -> int:
        """Count a failure of ``name``; the number of failures in the last ``window`` seconds."""

    @abstractmethod
    def try_acquire(self, name: str, *, rpm: int | None, tpm: int | None, max_parallel: int | None) -> bool:
        """Take one request of ``name``'s limits, atomically; False (nothing taken) when a limit is reached."""

    @abstractmethod
    def release(self, name: str) -> None:
        """A call to ``name`` ended (the in-flight count goes down)."""

    @abstractmethod
    def add_tokens(self, name: str, tokens: int) -> None:
        """Count tokens used by ``name`` in this window."""

    @abstractmethod
    def in_flight(self, name: str) -> int:
        """Calls to ``name`` in flight."""

    @abstractmethod
    def requests_this_minute(self, name: str) -> int:
        """Requests taken by ``name`` in this window."""


class LocalState(RouterState):
    """Router state in this process (thread-safe)."""

    def __init__(self, window_seconds: float = 60.0, probe_seconds: float = 30.0) -> None:
        super().__init__(window_seconds, probe_seconds)
        self._lock = threading.Lock()
        self._cooled_until: dict[str, float] = {}
        self._tripped: set[str] = set()
        self._probe_until: dict[str, float] = {}
        self._failures: dict[str, list[float]] = defaultdict(list)
        self._in_flight: dict[str, int] = defaultdict(int)
        self._requests: dict[tuple[str, int], int] = defaultdict(int)
        self._tokens: dict[tuple[str, int], int] = defaultdict(int)

    def cool_down(self, name: str, seconds: float) -> None:
        with self._lock:
            self._cooled_until[name] = max(self._cooled_until.get(name, 0.0), time.time() + seconds)
            self._tripped.add(name)
            self._probe_until.pop(name, None)

    def cooldown_remaining(self, name: str) -> float:
        return max(self._cooled_until.get(name, 0.0) - time.time(), 0.0)

    def claim(self, name: str) -> bool:
        with self._lock:
            now = time.time()
            if name not in self._tripped:
                return True
            if self._cooled_until.get(name, 0.0) > now or self._probe_until.get(name, 0.0) > now:
                return False
            self._probe_until[name] = now + self.probe_seconds
            return True

    def recover(self, name: str) -> None:
        if name not in self._tripped and name not in self._failures:
            return  # the common case, without the lock
        with self._lock:
            self._tripped.discard(name)
            self._probe_until.pop(name, None)
            self._failures.pop(name, None)

    def record_failure(self, name: str, window: float) -> int:
        with self._lock:
            now = time.time()
            recent = [t for t in self._failures[name] if t > now - window]
            recent.append(now)
            self._failures[name] = recent
            return len(recent)

    def try_acquire(self, name: str, *, rpm: int | None, tpm: int | None, max_parallel: int | None) -> bool:
        with self._lock:
            window = self._window()
            if rpm is not None and self._requests[(name, window)] >= rpm:
                return False
            if tpm is not None and self._tokens[(name, window)] >= tpm:
                return False
            if max_parallel is not None and self._in_flight[name] >= max_parallel:
                return False
            if rpm is not None:
                self._forget_old_windows(window)
            self._requests[(name, window)] += 1
            self._in_flight[name] += 1
            return True

    def _forget_old_windows(self, window: int) -> None:
        for counts in (self._requests, self._tokens):
            for key in [key for key in counts if key[1] < window]:
                del counts[key]

    def release(self, name: str) -> None:
        with self._lock:
            self._in_flight[name] = max(self._in_flight[name] - 1, 0)

    def add_tokens(self, name: str, tokens: int) -> None:
        with self._lock:
            self._tokens[(name, self._window())] += tokens

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    def requests_this_minute(self, name: str) -> int:
        return self._requests.get((name, self._window()), 0)


# KEYS: requests, tokens, in-flight. ARGV: rpm, tpm, max_parallel (-1: no limit), window ttl in seconds.
_ACQUIRE = """
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
local flying = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[1]) >= 0 and requests >= tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[2]) >= 0 and tokens >= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) >= 0 and flying >= tonumber(ARGV[3]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], 3600)
return 1
"""

# KEYS: cooldown, tripped, probe. ARGV: probe milliseconds.
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""


def _guarded(method: Callable[P, T]) -> Callable[P, T]:
    """Redis failures become :class:`RouterStateError`, naming the server (and never its password)."""

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        state: Any = args[0]
        try:
            return method(*args, **kwargs)
        except state._redis_error as exc:
            where = state.url.rsplit("@", 1)[-1]
            raise RouterStateError(
                f"router state: Redis at {where} failed ({type(exc).__name__}: {exc}); check that redis-server "
                "is running and reachable, or build the Router without redis_url for local limits"
            ) from exc

    return guarded


class RedisState(RouterState):
    """Router state shared through Redis (extra ``redis``): N processes hold one global limit.

    Args:
        url: ``redis://host:port/db``.
        namespace: separates routers sharing one Redis.
    """

    def __init__(
        self, url: str, namespace: str = "default", window_seconds: float = 60.0, probe_seconds: float = 30.0
    ) -> None:
        super().__init__(window_seconds, probe_seconds)
        try:
            import redis
        except ImportError as exc:
            raise missing_extra("redis", "redis") from exc
        self.url = url
        self._redis_error = redis.RedisError
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._prefix = f"llmkit:router:{namespace}:"
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._claim = self._redis.register_script(_CLAIM)

    def _key(self, kind: str, name: str, window: int | None = None) -> str:
        suffix = "" if window is None else f":{window}"
        return f"{self._prefix}{kind}:{name}{suffix}"

    @_guarded
    def cool_down(self, name: str, seconds: float) -> None:
        pipe = self._redis.pipeline()
        pipe.set(self._key("cooldown", name), "1", px=max(int(seconds * 1000), 1))
        pipe.set(self._key("tripped", name), "1", ex=24 * 3600)
        pipe.delete(self._key("probe", name))
        pipe.execute()

    @_guarded
    def cooldown_remaining(self, name: str) -> float:
        millis = self._redis.pttl(self._key("cooldown", name))
        return max(int(millis), 0) / 1000.0

    @_guarded
    def claim(self, name: str) -> bool:
        keys = [self._key("cooldown", name), self._key("tripped", name), self._key("probe", name)]
        return bool(self._claim(keys=keys, args=[int(self.probe_seconds * 1000)]))

    @_guarded
    def recover(self, name: str) -> None:
        self._redis.delete(self._key("tripped", name), self._key("probe", name), self._key("failures", name))

    @_guarded
    def record_failure(self, name: str, window: float) -> int:
        key = self._key("failures", name)
        pipe = self._redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, max(int(window), 1), nx=True)
        count, _ = pipe.execute()
        return int(count)

    @_guarded
    def try_acquire(self, name: str, *, rpm: int | None, tpm: int | None, max_parallel: int | None) -> bool:
        window = self._window()
        keys = [self._key("requests", name, window), self._key("tokens", name, window), self._key("flying", name)]
        limits = [-1 if value is None else value for value in (rpm, tpm, max_parallel)]
        ttl = int(self.window_seconds * 2) + 1
        return bool(self._acquire(keys=keys, args=[*limits, ttl]))

    @_guarded
    def release(self, name: str) -> None:
        self._redis.decr(self._key("flying", name))

    @_guarded
    def add_tokens(self, name: str, tokens: int) -> None:
        key = self._key("tokens", name, self._window())
        pipe = self._redis.pipeline()
        pipe.incrby(key, tokens)
        pipe.expire(key, int(self.window_seconds * 2) + 1)
        pipe.execute()

    @_guarded
    def in_flight(self, name: str) -> int:
        return int(self._redis.get(self._key("flying", name)) or 0)

    @_guarded
    def requests_this_minute(self, name: str) -> int:
        return int(self._redis.get(self._key("requests", name, self._window())) or 0)

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()
