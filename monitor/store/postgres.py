"""PostgreSQL store: one database shared by every worker of a consumer group.

Each worker writes what its partitions contributed (records, dead letters, a bottom-k
vector sample per partition) with those partitions' positions and watermarks in the same
transaction; records are keyed by (window, id), so a partition re-read after a rebalance
or a crash adds duplicates, never counts.

Windows are closed by one worker, the holder of the evaluation lease (a session-level
advisory lock: it goes when its holder's connection does), once every registered
partition's watermark has passed a window's end plus the allowed lateness, or
``windows.partial_after`` after the fastest partition passed it, naming the partitions it
was closed without. Writers hold a shared transaction-level advisory lock and the closer
an exclusive one, so a window never closes under a batch that is writing into it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg

from monitor.errors import StoreError
from monitor.store.base import BatchOutcome, BatchWrite, SavedState, ScoredRecord
from monitor.store.feedback import FeedbackTables
from monitor.store.outbox import OutboxTables
from monitor.store.sql import placeholders, wall_ms
from monitor.windows import Window

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Advisory lock keys (any two constants of our own).
_SCHEMA_LOCK = 0x616C_6967_6E00_0001
_CLOSE_LOCK = 0x616C_6967_6E00_0002
EVALUATION_LEASE = 0x616C_6967_6E00_0003

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    name TEXT PRIMARY KEY,
    next_offset BIGINT,
    watermark_ms BIGINT
);
CREATE TABLE IF NOT EXISTS windows (
    start_ms BIGINT PRIMARY KEY,
    end_ms BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed', 'evaluated')),
    closed_at_ms BIGINT,
    result BYTEA,
    ready_since_ms BIGINT,
    missing_partitions BYTEA
);
CREATE INDEX IF NOT EXISTS windows_by_status ON windows (status, start_ms);
CREATE TABLE IF NOT EXISTS records (
    window_start BIGINT NOT NULL,
    record_id TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    model TEXT NOT NULL,
    metadata BYTEA NOT NULL,
    scores BYTEA NOT NULL,
    source_partition TEXT NOT NULL,
    source_offset BIGINT NOT NULL,
    texts BYTEA,
    PRIMARY KEY (window_start, record_id)
);
CREATE INDEX IF NOT EXISTS records_by_id ON records (record_id);
CREATE TABLE IF NOT EXISTS dead_letters (
    source_partition TEXT NOT NULL,
    source_offset BIGINT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    raw BYTEA NOT NULL,
    raw_size BIGINT NOT NULL,
    ts_ms BIGINT,
    record_id TEXT,
    window_start BIGINT,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (source_partition, source_offset)
);
CREATE INDEX IF NOT EXISTS dead_letters_by_window ON dead_letters (window_start, reason);
CREATE TABLE IF NOT EXISTS vectors (
    window_start BIGINT NOT NULL,
    name TEXT NOT NULL,
    source_partition TEXT NOT NULL,
    sample_key BIGINT NOT NULL,
    record_id TEXT NOT NULL,
    vector BYTEA NOT NULL,
    prompt TEXT NOT NULL,
    PRIMARY KEY (window_start, name, source_partition, sample_key, record_id)
);
CREATE TABLE IF NOT EXISTS references_ (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    payload BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT NOT NULL,
    sink TEXT NOT NULL,
    payload BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    last_error TEXT,
    PRIMARY KEY (id, sink)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_ms);
CREATE TABLE IF NOT EXISTS rule_states (rule TEXT PRIMARY KEY, state BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id TEXT NOT NULL,
    label TEXT NOT NULL,
    note TEXT,
    reviewer TEXT,
    received_ms BIGINT NOT NULL,
    window_start BIGINT,
    known BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_by_window ON feedback (window_start, label);
"""


class PostgresStore(OutboxTables, FeedbackTables):
    def __init__(
        self,
        url: str,
        *,
        lateness_ms: int,
        partial_after_ms: int,
        vector_sample: int = 1000,
        example_chars: int = 300,
    ):
        self._url = url
        self._lateness_ms = lateness_ms
        self._partial_after_ms = partial_after_ms
        self._vector_sample = vector_sample
        self._example_chars = example_chars
        self._lock = threading.RLock()
        self._db: psycopg.Connection[Any] | None = None
        self._lease_lock = threading.Lock()
        self._lease_db: psycopg.Connection[Any] | None = None
        self._leased = False
        with self._lock, self._transaction():
            self._run("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            self._conn().execute(_SCHEMA)  # type: ignore[arg-type]
            self._check_schema_version()

    # -- connections -----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=10,
                application_name=f"alignwatch[{os.getpid()}]",
            )
        except psycopg.Error as exc:
            # The message names host and port; the URL (it may hold a password) is not echoed.
            raise StoreError(f"PostgreSQL store: cannot connect: {exc}") from exc

    def _conn(self) -> psycopg.Connection[Any]:
        """The store's connection, opened again after it broke (a database restart)."""
        if self._db is None or self._db.closed or self._db.broken:
            if self._db is not None:
                self._db.close()
            self._db = self._connect()
        return self._db

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            cursor = self._conn().execute(_pg(sql), _text_safe(params))
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store: {exc}") from exc

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            return self._conn().execute(_pg(sql), _text_safe(params)).rowcount
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store: {exc}") from exc

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        try:
            with self._conn().cursor() as cursor:
                cursor.executemany(_pg(sql), [_text_safe(row) for row in rows])
                return cursor.rowcount
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self._conn().transaction():
                yield
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store: {exc}") from exc

    def _check_schema_version(self) -> None:
        found = self._rows("SELECT value FROM meta WHERE key = 'schema_version'")
        if not found:
            self._run(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION).encode(),),
            )
        elif int(bytes(found[0][0])) != SCHEMA_VERSION:
            raise StoreError(
                f"PostgreSQL store has schema version {bytes(found[0][0]).decode()}, "
                f"this alignwatch expects {SCHEMA_VERSION}"
            )

    # -- partitions and the write path -----------------------------------------------------

    def claim_partitions(self, partitions: Iterable[str]) -> SavedState:
        wanted = sorted(set(partitions))
        with self._lock, self._transaction():
            self._run_many(
                "INSERT INTO partitions (name) VALUES (?) ON CONFLICT DO NOTHING",
                [(name,) for name in wanted],
            )
            rows = self._rows(
                "SELECT name, next_offset, watermark_ms FROM partitions "
                f"WHERE name IN ({placeholders(wanted)})",
                wanted,
            )
        return SavedState(
            partitions=frozenset(wanted),
            watermark={name: ts for name, _, ts in rows if ts is not None},
            positions={name: offset for name, offset, _ in rows if offset is not None},
        )

    def write_batch(self, batch: BatchWrite) -> BatchOutcome:
        """``batch.close_through_ms`` is this worker's view; windows close from every
        partition's stored watermark instead (:meth:`pending_windows`)."""
        with self._lock, self._transaction():
            self._run("SELECT pg_advisory_xact_lock_shared(?)", (_CLOSE_LOCK,))
            scored = [*batch.on_time, *batch.late_candidates]
            closed = self._closed_windows(scored)
            on_time = [s for s in scored if s.window.start_ms not in closed]
            accepted = self._insert_records(on_time)
            self._sample_vectors(on_time)
            duplicates, late = self._split_late(s for s in scored if s.window.start_ms in closed)
            duplicates += len(on_time) - accepted
            new_letters = self._insert_dead_letters([*batch.dead_letters, *late])
            names = sorted(set(batch.positions) | set(batch.watermark))
            # GREATEST: a worker that lost a partition and has not noticed yet cannot move
            # its position or watermark back.
            self._run_many(
                "INSERT INTO partitions (name, next_offset, watermark_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET "
                "next_offset = GREATEST(partitions.next_offset, excluded.next_offset), "
                "watermark_ms = GREATEST(partitions.watermark_ms, excluded.watermark_ms)",
                [(n, batch.positions.get(n), batch.watermark.get(n)) for n in names],
            )
        return BatchOutcome(
            accepted=accepted,
            duplicates=duplicates,
            late=tuple(letter for letter, _ in late),
            new_dead_letters=new_letters,
        )

    def _closed_windows(self, scored: Sequence[ScoredRecord]) -> set[int]:
        """Starts of the windows these records may no longer join: closed ones, and those
        the shared watermark has passed (the evaluator is about to close them)."""
        starts = sorted({s.window.start_ms for s in scored})
        if not starts:
            return set()
        status = dict(
            self._rows(
                f"SELECT start_ms, status FROM windows WHERE start_ms IN ({placeholders(starts)})",
                starts,
            )
        )
        through = self._through()
        return {
            s.window.start_ms
            for s in scored
            if status.get(s.window.start_ms, "open") != "open"
            or (through is not None and s.window.end_ms <= through)
        }

    def _through(self) -> int | None:
        """Windows ending at or before this are closed by every partition's watermark."""
        unknown, slowest = self._rows(
            "SELECT COUNT(*) - COUNT(watermark_ms), MIN(watermark_ms) FROM partitions"
        )[0]
        return None if unknown or slowest is None else slowest - self._lateness_ms

    def _sample_vectors(self, scored: Sequence[ScoredRecord]) -> None:
        rows = self._vector_rows(scored)
        self._run_many(
            "INSERT INTO vectors VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows
        )
        self._run_many(
            "DELETE FROM vectors WHERE window_start = ? AND name = ? AND source_partition = ? "
            "AND sample_key > (SELECT sample_key FROM vectors WHERE window_start = ? "
            "AND name = ? AND source_partition = ? ORDER BY sample_key LIMIT 1 OFFSET ?)",
            [(*key, *key, self._vector_sample - 1) for key in sorted({r[:3] for r in rows})],
        )

    # -- closing and the evaluation lease --------------------------------------------------

    def evaluation_lease(self) -> bool:
        with self._lease_lock:
            try:
                if self._lease_db is None or self._lease_db.closed or self._lease_db.broken:
                    if self._leased:
                        log.warning("evaluation lease lost with its connection")
                    self._leased = False
                    self._lease_db = self._connect()
                if self._leased:
                    self._lease_db.execute("SELECT 1")
                else:
                    row = self._lease_db.execute(
                        "SELECT pg_try_advisory_lock(%s)", (EVALUATION_LEASE,)
                    ).fetchone()
                    self._leased = bool(row and row[0])
                    if self._leased:
                        log.info("evaluation lease taken: this worker evaluates windows")
            except (psycopg.Error, StoreError) as exc:
                log.warning("evaluation lease check failed", extra={"error": str(exc)})
                if self._lease_db is not None:
                    self._lease_db.close()
                self._leased = False
            return self._leased

    def pending_windows(self) -> list[Window]:
        """Closes what is ready (call it only while holding the lease), then lists every
        closed window waiting for evaluation."""
        now_ms = wall_ms()
        lateness = self._lateness_ms
        with self._lock, self._transaction():
            self._run("SELECT pg_advisory_xact_lock(?)", (_CLOSE_LOCK,))
            marks: dict[str, int | None] = dict(
                self._rows("SELECT name, watermark_ms FROM partitions")
            )
            known = [ts for ts in marks.values() if ts is not None]
            if marks and len(known) == len(marks):
                self._run(
                    "UPDATE windows SET status = 'closed', closed_at_ms = ? "
                    "WHERE status = 'open' AND end_ms <= ?",
                    (now_ms, min(known) - lateness),
                )
            if known:
                self._run(
                    "UPDATE windows SET ready_since_ms = ? "
                    "WHERE status = 'open' AND ready_since_ms IS NULL AND end_ms <= ?",
                    (now_ms, max(known) - lateness),
                )
                stalled = self._rows(
                    "SELECT start_ms, end_ms FROM windows "
                    "WHERE status = 'open' AND ready_since_ms <= ?",
                    (now_ms - self._partial_after_ms,),
                )
                for start, end in stalled:
                    missing = sorted(
                        name for name, ts in marks.items() if ts is None or ts < end + lateness
                    )
                    self._run(
                        "UPDATE windows SET status = 'closed', closed_at_ms = ?, "
                        "missing_partitions = ? WHERE start_ms = ?",
                        (now_ms, orjson.dumps(missing), start),
                    )
                    log.warning(
                        "window closed without every partition",
                        extra={"window_start": Window(start, end).iso_start(), "missing": missing},
                    )
            rows = self._rows(
                "SELECT start_ms, end_ms FROM windows WHERE status = 'closed' ORDER BY start_ms"
            )
        return [Window(s, e) for s, e in rows]

    def _missing_partitions(self, window: Window) -> tuple[str, ...]:
        rows = self._rows(
            "SELECT missing_partitions FROM windows WHERE start_ms = ?", (window.start_ms,)
        )
        return tuple(orjson.loads(rows[0][0])) if rows and rows[0][0] is not None else ()

    def close(self) -> None:
        """Hands the lease back first, so that another worker can take it at once (it would
        anyway once this connection is gone, a moment after the server notices)."""
        with self._lock, self._lease_lock:
            if self._leased and self._lease_db is not None:
                with contextlib.suppress(psycopg.Error):
                    self._lease_db.execute("SELECT pg_advisory_unlock(%s)", (EVALUATION_LEASE,))
            for connection in (self._db, self._lease_db):
                if connection is not None:
                    connection.close()
            self._db = self._lease_db = None
            self._leased = False


def _text_safe(params: Sequence[Any]) -> list[Any]:
    """PostgreSQL text cannot hold NUL, which valid JSON can put in an id, a model name or a
    prompt: it becomes U+FFFD, the same on every write and every lookup, so such a record is
    stored and found again instead of failing its batch for ever."""
    return [
        value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value
        for value in params
    ]


def _pg(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("?", "%s")
