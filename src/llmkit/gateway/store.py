"""The gateway's records: virtual keys (stored hashed), their budgets, and the usage log.

SQLite by default (one file, WAL: the workers of one machine share it), PostgreSQL when ``database_url`` starts with
``postgresql://`` (extra ``server``, for a fleet of machines). Budgets hold under concurrency because a reservation is
one conditional ``UPDATE`` (``spent + reserved + this <= budget``), atomic in both databases.

Example:
    >>> import tempfile
    >>> store = GatewayStore(f"sqlite:///{tempfile.mkdtemp()}/gateway.sqlite")
    >>> key, secret = store.create_key(name="ci", budget_usd=1.0)
    >>> store.lookup(secret).name, store.reserve(key.id, 0.6), store.reserve(key.id, 0.6)
    ('ci', True, False)
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from llmkit.errors import ConfigurationError, LLMError, missing_extra

T = TypeVar("T")
log = logging.getLogger("llmkit.gateway")

KEY_PREFIX = "sk-llmkit-"
LOG_INTERVAL = 0.05  # seconds the usage-log writer lets records gather before a batch
LOG_QUEUE_MAX = 100_000  # records waiting to be written; past it they are dropped, with an error in the log

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS gateway_keys (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, hint TEXT NOT NULL, models TEXT,
        rpm INTEGER, tpm INTEGER, budget_usd DOUBLE PRECISION, spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        reserved_usd DOUBLE PRECISION NOT NULL DEFAULT 0, created DOUBLE PRECISION NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS gateway_usage (
        at DOUBLE PRECISION NOT NULL, request_id TEXT NOT NULL, key_id TEXT, model TEXT NOT NULL, deployment TEXT,
        input_tokens INTEGER, output_tokens INTEGER, cached_tokens INTEGER, reasoning_tokens INTEGER,
        cost_usd DOUBLE PRECISION, latency_ms DOUBLE PRECISION NOT NULL, status INTEGER NOT NULL,
        stream INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS gateway_usage_key ON gateway_usage (key_id, at)",
]

_KEY_COLUMNS = "id, name, hint, models, rpm, tpm, budget_usd, spent_usd, reserved_usd, created, revoked"
_USAGE_COLUMNS = (
    "at, request_id, key_id, model, deployment, input_tokens, output_tokens, cached_tokens, reasoning_tokens, "
    "cost_usd, latency_ms, status, stream"
)


class GatewayStoreError(LLMError):
    """The gateway's database could not be used."""


@dataclass(frozen=True)
class VirtualKey:
    """A virtual key as stored (never its secret): limits, allowed models (None: all) and budget in USD."""

    id: str
    name: str
    hint: str
    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    created: float = 0.0
    revoked: bool = False

    def public(self) -> dict[str, Any]:
        """The key as the admin API shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "hint": self.hint,
            "models": list(self.models) if self.models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "spent_usd": round(self.spent_usd, 9),
            "reserved_usd": round(self.reserved_usd, 9),
            "created": self.created,
            "revoked": self.revoked,
        }


@dataclass(frozen=True)
class UsageRecord:
    """One request in the usage log."""

    request_id: str
    key_id: str | None
    model: str
    deployment: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    latency_ms: float
    status: int
    stream: bool
    at: float = field(default_factory=time.time)

    def row(self) -> tuple[Any, ...]:
        return (
            self.at, self.request_id, self.key_id, self.model, self.deployment, self.input_tokens,
            self.output_tokens, self.cached_tokens, self.reasoning_tokens, self.cost_usd, self.latency_ms,
            self.status, int(self.stream),
        )  # fmt: skip


def hash_secret(secret: str) -> str:
    """How a key is stored: its SHA-256 (keys are random and long, so a plain hash cannot be reversed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class GatewayStore:
    """Virtual keys, budgets and the usage log in SQLite (``sqlite:///path``) or PostgreSQL (``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._postgres = url.startswith(("postgresql://", "postgres://"))
        if not self._postgres and not url.startswith("sqlite:///"):
            raise ConfigurationError(
                f"gateway database_url must start with sqlite:/// or postgresql://, got {url.split(':', 1)[0]}:..."
            )
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
        self._psycopg: Any = None
        if self._postgres:
            try:
                import psycopg
            except ImportError as exc:
                raise missing_extra("psycopg", "postgres") from exc
            self._psycopg = psycopg
            self._errors += (psycopg.Error,)
        # The usage log: records queue here (a deque append needs no lock); the writer thread wakes on the first one,
        # waits LOG_INTERVAL for more, and inserts them all in one transaction.
        self._log_queue: collections.deque[UsageRecord] = collections.deque()
        self._log_ready = threading.Event()
        self._log_stop = False
        self._writer: threading.Thread | None = None
        self._guard(lambda: self._setup())

    # -- connections ---------------------------------------------------------------------------------------------

    def _where(self) -> str:
        return self.url.rsplit("@", 1)[-1] if self._postgres else self.url  # never a password

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except self._errors as exc:
            raise GatewayStoreError(f"gateway database {self._where()}: {exc}") from exc

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> Any:
        if self._psycopg is not None:
            return self._psycopg.connect(self.url, autocommit=True)
        path = Path(self.url.removeprefix("sqlite:///")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._postgres:
            sql = sql.replace("?", "%s")
        return self._connection().execute(sql, params)

    def _setup(self) -> None:
        for statement in _SCHEMA:
            self._execute(statement if self._postgres else statement.replace("DOUBLE PRECISION", "REAL"))

    # -- keys ----------------------------------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        models: Sequence[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_usd: float | None = None,
    ) -> tuple[VirtualKey, str]:
        """A new key and its secret (shown this once; only its hash is kept)."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = VirtualKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            hint=f"{secret[:len(KEY_PREFIX) + 4]}...{secret[-4:]}",
            models=tuple(models) if models is not None else None,
            rpm=rpm,
            tpm=tpm,
            budget_usd=budget_usd,
            created=time.time(),
        )
        self._guard(
            lambda: self._execute(
                "INSERT INTO gateway_keys (id, name, hash, hint, models, rpm, tpm, budget_usd, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.id, key.name, hash_secret(secret), key.hint,
                    json.dumps(list(key.models)) if key.models is not None else None,
                    rpm, tpm, budget_usd, key.created,
                ),
            )
        )
        return key, secret

    @staticmethod
    def _key(row: Sequence[Any]) -> VirtualKey:
        models = json.loads(row[3]) if row[3] is not None else None
        return VirtualKey(
            id=row[0], name=row[1], hint=row[2], models=tuple(models) if models is not None else None, rpm=row[4],
            tpm=row[5], budget_usd=row[6], spent_usd=row[7], reserved_usd=row[8], created=row[9], revoked=bool(row[10]),
        )  # fmt: skip

    def lookup(self, secret: str) -> VirtualKey | None:
        """The live key with this secret, or None."""
        row = self._guard(
            lambda: self._execute(
                f"SELECT {_KEY_COLUMNS} FROM gateway_keys WHERE hash = ? AND revoked = 0", (hash_secret(secret),)
            ).fetchone()
        )
        return self._key(row) if row is not None else None

    def get_key(self, key_id: str) -> VirtualKey | None:
        """A key by id (revoked ones too)."""
        row = self._guard(
            lambda: self._execute(f"SELECT {_KEY_COLUMNS} FROM gateway_keys WHERE id = ?", (key_id,)).fetchone()
        )
        return self._key(row) if row is not None else None

    def list_keys(self) -> list[VirtualKey]:
        """Every key, newest first."""
        rows = self._guard(
            lambda: self._execute(f"SELECT {_KEY_COLUMNS} FROM gateway_keys ORDER BY created DESC").fetchall()
        )
        return [self._key(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such key."""
        cursor = self._guard(lambda: self._execute("UPDATE gateway_keys SET revoked = 1 WHERE id = ?", (key_id,)))
        return bool(cursor.rowcount)

    # -- budgets -------------------------------------------------------------------------------------------------

    def reserve(self, key_id: str, amount: float) -> bool:
        """Reserve ``amount`` USD of the key's budget; False when that would pass the budget (or the key is gone)."""
        cursor = self._guard(
            lambda: self._execute(
                "UPDATE gateway_keys SET reserved_usd = reserved_usd + ? WHERE id = ? AND revoked = 0 "
                "AND (budget_usd IS NULL OR spent_usd + reserved_usd + ? <= budget_usd)",
                (amount, key_id, amount),
            )
        )
        return bool(cursor.rowcount)

    def settle(self, key_id: str, reserved: float, spent: float) -> None:
        """Release a reservation and record what was really spent (0 for a failed call)."""
        self._guard(
            lambda: self._execute(
                "UPDATE gateway_keys SET reserved_usd = CASE WHEN reserved_usd > ? THEN reserved_usd - ? ELSE 0 END, "
                "spent_usd = spent_usd + ? WHERE id = ?",
                (reserved, reserved, spent, key_id),
            )
        )

    # -- usage log -----------------------------------------------------------------------------------------------

    def log(self, record: UsageRecord) -> None:
        """Queue one request's record; a background thread writes them in batches (the request never waits)."""
        if self._writer is None:
            self._log_stop = False
            self._writer = threading.Thread(target=self._write_log, name="llmkit-usage-log", daemon=True)
            self._writer.start()
        if len(self._log_queue) >= LOG_QUEUE_MAX:
            log.error("usage log queue full: dropping the record of request %s", record.request_id)
            return
        self._log_queue.append(record)
        if not self._log_ready.is_set():
            self._log_ready.set()

    def _write_log(self) -> None:
        while True:
            self._log_ready.wait()
            if not self._log_stop:
                time.sleep(LOG_INTERVAL)  # let a batch gather: one transaction, one wake-up, for many records
            self._log_ready.clear()
            batch = []
            while self._log_queue:
                batch.append(self._log_queue.popleft())
            for start in range(0, len(batch), 1000):
                self._insert(batch[start : start + 1000])
            if self._log_stop and not self._log_queue:
                return

    def _insert(self, batch: list[UsageRecord]) -> None:
        marks = ", ".join("?" * 13)
        sql = f"INSERT INTO gateway_usage ({_USAGE_COLUMNS}) VALUES ({marks})"
        if self._postgres:
            sql = sql.replace("?", "%s")

        def insert() -> None:
            conn = self._connection()
            rows = [r.row() for r in batch]
            if self._postgres:
                with conn.transaction():
                    conn.cursor().executemany(sql, rows)
                return
            conn.execute("BEGIN")  # one transaction: in autocommit mode every row would be its own (3x the CPU)
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        try:
            self._guard(insert)
        except GatewayStoreError as exc:  # the requests were served; the log says what it lost, loudly
            log.error("usage log: %d records not written: %s", len(batch), exc)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued usage record is written (and stop the writer)."""
        if self._writer is not None:
            self._log_stop = True
            self._log_ready.set()
            self._writer.join(timeout)
            self._writer = None

    def usage(self, key_id: str | None = None) -> list[dict[str, Any]]:
        """The usage log (of one key), oldest first."""
        columns = [c.strip() for c in _USAGE_COLUMNS.split(",")]
        where, params = ("WHERE key_id = ?", (key_id,)) if key_id else ("", ())
        rows = self._guard(
            lambda: self._execute(f"SELECT {_USAGE_COLUMNS} FROM gateway_usage {where} ORDER BY at", params).fetchall()
        )
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def close(self) -> None:
        """Write what is queued and close this thread's connection."""
        self.flush()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
