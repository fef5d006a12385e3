"""The on-disk store: one SQLite file (WAL), shared safely by the threads and processes of one machine.

The default file is ``~/.cache/llmkit/responses.sqlite`` (``$XDG_CACHE_HOME`` and ``$LLMKIT_CACHE_DIR`` respected).
Its size is capped (``max_bytes``): past the cap the least recently used entries go. The file carries an application
id and a schema version, so a file that is not ours, a damaged one, or one written by a newer llmkit is refused with a
:class:`~llmkit.errors.CacheError` naming the file and the fix, never read as answers.

Example:
    >>> import tempfile, pathlib
    >>> from llmkit.cache import SQLiteCache
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "responses.sqlite"
    >>> cache = SQLiteCache(path)
    >>> cache.set("k", b"v", namespace="default", ttl=None)
    >>> cache.get("k", namespace="default")
    b'v'
    >>> cache.close()
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from llmkit.cache.backend import Cache, CacheStats
from llmkit.errors import CacheError, ConfigurationError

T = TypeVar("T")

APPLICATION_ID = 0x6C6C6D6B  # "llmk": marks a file as an llmkit response cache
SCHEMA_VERSION = 1
_TOUCH_AFTER = 60.0  # a hit refreshes an entry's recency at most once a minute: hits stay read-only

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    accessed REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_accessed ON entries (accessed);
CREATE INDEX IF NOT EXISTS entries_namespace ON entries (namespace);
"""


def default_path() -> Path:
    """Where the on-disk cache lives unless told otherwise."""
    root = os.environ.get("LLMKIT_CACHE_DIR")
    if root:
        return Path(root) / "responses.sqlite"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmkit" / "responses.sqlite"


class SQLiteCache(Cache):
    """Responses in a SQLite file, capped at ``max_bytes`` (least recently used entries evicted).

    Args:
        path: the file (created with its folder); default :func:`default_path`.
        max_bytes: the cap on stored answers (default 1 GiB).
        busy_timeout: seconds a writer waits for another process's write to finish.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, max_bytes: int = 2**30, busy_timeout: float = 30.0
    ) -> None:
        super().__init__()
        if max_bytes < 1:
            raise ConfigurationError("SQLiteCache: max_bytes must be at least 1")
        self.path = Path(path) if path is not None else default_path()
        self.max_bytes, self.busy_timeout = max_bytes, busy_timeout
        self._local = threading.local()
        self._sets_since_check = 0
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connection()  # open (and check) now: a bad file is reported at construction

    # -- connections ---------------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        conn = self._guard(self._open)
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._connections.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            self._check(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise CacheError(
                    f"response cache: {self.path} is a SQLite file of another program; "
                    "point the cache at another path (SQLiteCache(path=...) or LLMKIT_CACHE_DIR)"
                )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("PRAGMA application_id").fetchone()[0] == 0:  # another process may have won
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif app_id != APPLICATION_ID:
            raise CacheError(
                f"response cache: {self.path} belongs to another program (application id {app_id:#x}); "
                "point the cache at another path"
            )
        elif version > SCHEMA_VERSION:
            raise CacheError(
                f"response cache: {self.path} was written by a newer llmkit (schema {version}, this one reads "
                f"{SCHEMA_VERSION}); upgrade llmkit or use another path"
            )
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across crashes of the process

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except sqlite3.DatabaseError as exc:
            raise CacheError(
                f"response cache: {self.path} cannot be used ({exc}); if it is damaged, delete it "
                "(llmkit cache clear --path ... or rm) and it will be rebuilt"
            ) from exc
        except OSError as exc:
            raise CacheError(f"response cache: cannot open {self.path} ({exc}); choose a writable path") from exc

    # -- the store -----------------------------------------------------------------------------------------------

    def get(self, key: str, *, namespace: str) -> bytes | None:
        conn = self._connection()

        def read() -> bytes | None:
            row = conn.execute("SELECT value, expires, accessed FROM entries WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            value, expires, accessed = row
            now = time.time()
            if expires is not None and expires <= now:
                conn.execute("DELETE FROM entries WHERE key = ? AND expires <= ?", (key, now))
                return None
            if now - accessed > _TOUCH_AFTER:
                conn.execute("UPDATE entries SET accessed = ? WHERE key = ?", (now, key))
            return bytes(value)

        return self._count(self._guard(read))

    def set(self, key: str, value: bytes, *, namespace: str, ttl: float | None) -> None:
        if len(value) > self.max_bytes:
            return
        conn = self._connection()
        now = time.time()
        expires = None if ttl is None else now + ttl
        self._guard(
            lambda: conn.execute(
                "INSERT OR REPLACE INTO entries (key, namespace, value, size, created, expires, accessed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, namespace, value, len(value), now, expires, now),
            )
        )
        self._sets_since_check += 1
        if self._sets_since_check >= 64 or len(value) > self.max_bytes // 64:
            self._sets_since_check = 0
            self._guard(lambda: self._evict(conn))

    def _evict(self, conn: sqlite3.Connection) -> None:
        total = conn.execute("SELECT coalesce(sum(size), 0) FROM entries").fetchone()[0]
        if total <= self.max_bytes:
            return
        target = self.max_bytes * 9 // 10  # evict to 90% so the next writes don't evict again at once
        conn.execute("DELETE FROM entries WHERE expires IS NOT NULL AND expires <= ?", (time.time(),))
        while total > target:
            rows = conn.execute("SELECT key, size FROM entries ORDER BY accessed LIMIT 256").fetchall()
            if not rows:
                return
            doomed: list[str] = []
            for key, size in rows:
                doomed.append(key)
                total -= size
                if total <= target:
                    break
            conn.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in doomed])

    def clear(self, namespace: str | None = None) -> int:
        conn = self._connection()
        if namespace is None:
            return self._guard(lambda: conn.execute("DELETE FROM entries").rowcount)
        return self._guard(lambda: conn.execute("DELETE FROM entries WHERE namespace = ?", (namespace,)).rowcount)

    def stats(self) -> CacheStats:
        conn = self._connection()
        query = "SELECT count(*), coalesce(sum(size), 0) FROM entries"
        entries, size = self._guard(lambda: conn.execute(query).fetchone())
        return CacheStats(entries, size, self.hits, self.misses, str(self.path))

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
