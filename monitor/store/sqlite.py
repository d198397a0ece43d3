"""SQLite store (WAL): embedded, zero set-up, one worker.

What it keeps: every accepted record's scores and metadata (not its texts) until its
window is older than ``store.retention``; every dead letter with its original bytes for
the same period; window results indefinitely. Record rows are keyed by (window, id), which
is what makes a re-delivered record a duplicate instead of a second count.

Vectors (embeddings) are not kept per record: each window keeps a bottom-k sample, the
``vector_sample`` records whose id hashes lowest. That is a uniform sample that does not
depend on arrival order, ignores re-deliveries, and merges across workers by taking the
lowest k again. The sampled records' prompts are kept beside them, cut to
``example_chars``, so drift explanations can quote examples.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import StoreError
from monitor.store.base import BatchOutcome, BatchWrite, SavedState, ScoredRecord
from monitor.store.feedback import FeedbackTables
from monitor.store.outbox import OutboxTables
from monitor.windows import Window

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
    start_ms INTEGER PRIMARY KEY,
    end_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed', 'evaluated')),
    closed_at_ms INTEGER,
    result BLOB
);
CREATE INDEX IF NOT EXISTS windows_by_status ON windows (status, start_ms);
CREATE TABLE IF NOT EXISTS records (
    window_start INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    model TEXT NOT NULL,
    metadata BLOB NOT NULL,
    scores BLOB NOT NULL,
    source_partition TEXT NOT NULL,
    source_offset INTEGER NOT NULL,
    texts BLOB,
    PRIMARY KEY (window_start, record_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    source_partition TEXT NOT NULL,
    source_offset INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BLOB NOT NULL,
    raw_size INTEGER NOT NULL,
    ts_ms INTEGER,
    record_id TEXT,
    window_start INTEGER,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (source_partition, source_offset)
);
CREATE INDEX IF NOT EXISTS dead_letters_by_window ON dead_letters (window_start, reason);
CREATE TABLE IF NOT EXISTS vectors (
    window_start INTEGER NOT NULL,
    name TEXT NOT NULL,
    sample_key INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    vector BLOB NOT NULL,
    prompt TEXT NOT NULL,
    PRIMARY KEY (window_start, name, sample_key, record_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS references_ (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT NOT NULL,
    sink TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    last_error TEXT,
    PRIMARY KEY (id, sink)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_ms);
CREATE TABLE IF NOT EXISTS rule_states (rule TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS records_by_id ON records (record_id);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    label TEXT NOT NULL,
    note TEXT,
    reviewer TEXT,
    received_ms INTEGER NOT NULL,
    window_start INTEGER,
    known INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_window ON feedback (window_start, label);
"""


class SQLiteStore(OutboxTables, FeedbackTables):
    """``path`` may be ``":memory:"`` for a throw-away store (replays, tests)."""

    _VECTOR_PARTITION = "''"  # one sample per window: one worker wrote every partition

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        vector_sample: int = 1000,
        example_chars: int = 300,
    ):
        self.path = str(path)
        self._vector_sample = vector_sample
        self._example_chars = example_chars
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3_connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA busy_timeout=5000")
            with self._db:
                self._db.executescript(_SCHEMA)
                self._check_schema_version()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc

    def _check_schema_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
        elif int(row[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {row[0]}, this alignwatch expects {SCHEMA_VERSION}"
            )

    def claim_partitions(self, partitions: Iterable[str]) -> SavedState:
        wanted = frozenset(partitions)
        with self._lock:
            watermark, positions = self._progress()
        return SavedState(
            partitions=wanted,
            watermark={p: ts for p, ts in watermark.items() if p in wanted},
            positions={p: offset for p, offset in positions.items() if p in wanted},
        )

    def _progress(self) -> tuple[dict[str, int], dict[str, int]]:
        """Every partition's stored watermark and position."""
        rows = dict(
            self._db.execute(
                "SELECT key, value FROM meta WHERE key IN ('watermark', 'positions')"
            ).fetchall()
        )
        watermark = orjson.loads(rows.get("watermark", b"{}"))
        return watermark, orjson.loads(rows.get("positions", b"{}"))

    def evaluation_lease(self) -> bool:
        """Always: a SQLite store has one worker."""
        return True

    def write_batch(self, batch: BatchWrite) -> BatchOutcome:
        with self._lock, self._transaction():
            accepted = self._insert_records(batch.on_time)
            self._sample_vectors(batch.on_time)
            duplicates, late = self._split_late(batch.late_candidates)
            duplicates += len(batch.on_time) - accepted
            new_letters = self._insert_dead_letters([*batch.dead_letters, *late])
            # This batch's partitions over the stored ones: a partition revoked from this
            # worker keeps its last state for whoever is assigned it next.
            watermark, positions = self._progress()
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("watermark", orjson.dumps({**watermark, **batch.watermark})),
                    ("positions", orjson.dumps({**positions, **batch.positions})),
                ],
            )
            closed = (
                self._close(batch.close_through_ms) if batch.close_through_ms is not None else []
            )
        return BatchOutcome(
            accepted=accepted,
            duplicates=duplicates,
            late=tuple(letter for letter, _ in late),
            new_dead_letters=new_letters,
            closed=tuple(closed),
        )

    def _sample_vectors(self, scored: Sequence[ScoredRecord]) -> None:
        rows = [(w, n, k, i, v, p) for w, n, _, k, i, v, p in self._vector_rows(scored)]
        if not rows:
            return
        self._db.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._db.executemany(
            "DELETE FROM vectors WHERE window_start = ?1 AND name = ?2 AND sample_key > ("
            "SELECT sample_key FROM vectors WHERE window_start = ?1 AND name = ?2 "
            "ORDER BY sample_key LIMIT 1 OFFSET ?3)",
            [(start, name, self._vector_sample - 1) for start, name in {r[:2] for r in rows}],
        )

    def _close(self, through_ms: int) -> list[Window]:
        rows = self._db.execute(
            "UPDATE windows SET status = 'closed', closed_at_ms = ? "
            "WHERE status = 'open' AND end_ms <= ? RETURNING start_ms, end_ms",
            (int(time.time() * 1000), through_ms),
        ).fetchall()
        return sorted(Window(s, e) for s, e in rows)

    def pending_windows(self) -> list[Window]:
        with self._lock:
            rows = self._db.execute(
                "SELECT start_ms, end_ms FROM windows WHERE status = 'closed' ORDER BY start_ms"
            ).fetchall()
        return [Window(s, e) for s, e in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- connection primitives (monitor.store.sql) ---------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._db.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        try:
            return self._db.executemany(sql, rows).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def _transaction(self) -> AbstractContextManager[None]:
        return _Transaction(self._db, self.path)


class _Transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``; any SQLite failure becomes a StoreError."""

    def __init__(self, db: sqlite3.Connection, path: str):
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLite store {self._path}: cannot begin a transaction: {exc}"
            ) from exc

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            if exc is None:
                self._db.execute("COMMIT")
                return
            self._db.execute("ROLLBACK")
        except sqlite3.Error as db_exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"SQLite store {self._path}: commit failed: {db_exc}") from db_exc
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"SQLite store {self._path}: {exc}") from exc


def sqlite3_connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit, so nothing commits behind our back.
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)
