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

import hashlib
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.errors import StoreError
from monitor.records import DeadLetter, DeadLetterReason
from monitor.store.base import BatchOutcome, BatchWrite, SavedState, ScoredRecord
from monitor.store.sqlite_feedback import FEEDBACK_SCHEMA, FeedbackTables
from monitor.store.sqlite_outbox import OUTBOX_SCHEMA, OutboxTables
from monitor.windows import Window, WindowContents

SCHEMA_VERSION = 1
# The dead-letter sink gets every byte; the store keeps this much of each, for counting
# and a look, so a flood of huge messages cannot fill memory or disk.
DEAD_LETTER_KEPT_BYTES = 65_536

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
"""


class SQLiteStore(OutboxTables, FeedbackTables):
    """``path`` may be ``":memory:"`` for a throw-away store (replays, tests)."""

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
                self._db.executescript(_SCHEMA + OUTBOX_SCHEMA + FEEDBACK_SCHEMA)
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

    def load_state(self) -> SavedState:
        with self._lock:
            rows = dict(
                self._db.execute(
                    "SELECT key, value FROM meta WHERE key IN ('watermark', 'positions')"
                ).fetchall()
            )
        return SavedState(
            watermark=orjson.loads(rows.get("watermark", b"{}")),
            positions=orjson.loads(rows.get("positions", b"{}")),
        )

    def write_batch(self, batch: BatchWrite) -> BatchOutcome:
        now_ms = int(time.time() * 1000)
        with self._lock, self._transaction():
            db = self._db
            db.executemany(
                "INSERT OR IGNORE INTO windows (start_ms, end_ms, status) VALUES (?, ?, 'open')",
                {(s.window.start_ms, s.window.end_ms) for s in batch.on_time},
            )
            accepted = db.executemany(
                "INSERT OR IGNORE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_record_row(s) for s in batch.on_time],
            ).rowcount
            self._sample_vectors(batch.on_time)
            late: list[tuple[DeadLetter, Window | None]] = []
            duplicates = len(batch.on_time) - max(accepted, 0)
            for candidate, raw in batch.late_candidates:
                if self._has_record(candidate):
                    duplicates += 1
                else:
                    late.append((_late_letter(candidate, raw), candidate.window))
            letters = [*batch.dead_letters, *late]
            new_letters = db.executemany(
                "INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_dead_letter_row(d, w, now_ms) for d, w in letters],
            ).rowcount
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("watermark", orjson.dumps(dict(batch.watermark))),
                    ("positions", orjson.dumps(dict(batch.positions))),
                ],
            )
            closed = (
                self._close(batch.close_through_ms, now_ms)
                if batch.close_through_ms is not None
                else []
            )
        return BatchOutcome(
            accepted=max(accepted, 0),
            duplicates=duplicates,
            late=tuple(letter for letter, _ in late),
            new_dead_letters=max(new_letters, 0),
            closed=tuple(closed),
        )

    def _sample_vectors(self, scored: Sequence[ScoredRecord]) -> None:
        rows = [
            (
                s.window.start_ms,
                name,
                sample_key(s.record.id),
                s.record.id,
                np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
                s.record.prompt[: self._example_chars],
            )
            for s in scored
            for name, vector in s.vectors.items()
        ]
        if not rows:
            return
        self._db.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._db.executemany(
            "DELETE FROM vectors WHERE window_start = ?1 AND name = ?2 AND sample_key > ("
            "SELECT sample_key FROM vectors WHERE window_start = ?1 AND name = ?2 "
            "ORDER BY sample_key LIMIT 1 OFFSET ?3)",
            [(start, name, self._vector_sample - 1) for start, name in {r[:2] for r in rows}],
        )

    def _has_record(self, candidate: ScoredRecord) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM records WHERE window_start = ? AND record_id = ?",
            (candidate.window.start_ms, candidate.record.id),
        ).fetchone()
        return row is not None

    def _close(self, through_ms: int, now_ms: int) -> list[Window]:
        rows = self._db.execute(
            "UPDATE windows SET status = 'closed', closed_at_ms = ? "
            "WHERE status = 'open' AND end_ms <= ? RETURNING start_ms, end_ms",
            (now_ms, through_ms),
        ).fetchall()
        return sorted(Window(s, e) for s, e in rows)

    def close_all_open(self) -> list[Window]:
        with self._lock, self._transaction():
            rows = self._db.execute(
                "UPDATE windows SET status = 'closed', closed_at_ms = ? "
                "WHERE status = 'open' RETURNING start_ms, end_ms",
                (int(time.time() * 1000),),
            ).fetchall()
        return sorted(Window(s, e) for s, e in rows)

    def pending_windows(self) -> list[Window]:
        with self._lock:
            rows = self._db.execute(
                "SELECT start_ms, end_ms FROM windows WHERE status = 'closed' ORDER BY start_ms"
            ).fetchall()
        return [Window(s, e) for s, e in rows]

    def window_contents(self, window: Window) -> WindowContents:
        with self._lock:
            rows = self._db.execute(
                "SELECT model, metadata, scores FROM records WHERE window_start = ?",
                (window.start_ms,),
            ).fetchall()
            letters = self._db.execute(
                "SELECT reason, COUNT(*) FROM dead_letters WHERE window_start = ? GROUP BY reason",
                (window.start_ms,),
            ).fetchall()
            sampled = self._db.execute(
                "SELECT name, vector, prompt FROM vectors WHERE window_start = ? "
                "ORDER BY name, sample_key",
                (window.start_ms,),
            ).fetchall()
        by_reason = Counter(dict(letters))
        late = by_reason.pop(DeadLetterReason.LATE.value, 0)
        decoded = [orjson.loads(scores) for _, _, scores in rows]
        names = sorted({name for scores in decoded for name in scores})
        columns = {
            name: np.array([s.get(name, np.nan) for s in decoded], dtype=np.float64)
            for name in names
        }
        return WindowContents(
            window=window,
            scores=columns,
            models=tuple(model for model, _, _ in rows),
            metadata=tuple(orjson.loads(meta) for _, meta, _ in rows),
            invalid_by_reason=dict(by_reason),
            late_count=late,
            vectors={
                name: np.stack([np.frombuffer(v, dtype=np.float32) for _, v, _ in group])
                for name, group in _by_name(sampled).items()
            },
            vector_prompts={
                name: tuple(prompt for _, _, prompt in group)
                for name, group in _by_name(sampled).items()
            },
        )

    def results(self) -> list[tuple[Window, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT start_ms, end_ms, result FROM windows WHERE status = 'evaluated' "
                "ORDER BY start_ms"
            ).fetchall()
        return [(Window(s, e), orjson.loads(r)) for s, e, r in rows]

    def results_for(self, windows: Sequence[Window]) -> list[tuple[Window, dict[str, Any]]]:
        marks = ",".join("?" * len(windows))
        with self._lock:
            rows = self._db.execute(
                f"SELECT start_ms, end_ms, result FROM windows WHERE status = 'evaluated' "
                f"AND start_ms IN ({marks})",
                [w.start_ms for w in windows],
            ).fetchall()
        return [(Window(s, e), orjson.loads(r)) for s, e, r in rows]

    def records_with_texts(
        self, window_starts: Sequence[int], record_ids: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Records of these windows whose texts were kept, plus any with these ids."""
        starts = ",".join("?" * len(window_starts))
        ids = ",".join("?" * len(record_ids))
        where = f"(window_start IN ({starts}) AND texts IS NOT NULL)"
        if record_ids:
            where += f" OR record_id IN ({ids})"
        with self._lock:
            rows = self._db.execute(
                "SELECT window_start, record_id, ts_ms, model, metadata, scores, texts "
                f"FROM records WHERE {where} ORDER BY window_start, record_id",
                [*window_starts, *record_ids],
            ).fetchall()
        return [
            {
                "window_start_ms": start,
                "id": record_id,
                "ts_ms": ts_ms,
                "model": model,
                "metadata": orjson.loads(metadata),
                "scores": orjson.loads(scores),
                **(orjson.loads(texts) if texts is not None else {}),
            }
            for start, record_id, ts_ms, model, metadata, scores, texts in rows
        ]

    def evaluated_windows(
        self, *, before_ms: int | None = None, limit: int, newest_first: bool = False
    ) -> list[Window]:
        """Evaluated windows starting before ``before_ms``, oldest or newest first."""
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            rows = self._db.execute(
                "SELECT start_ms, end_ms FROM windows WHERE status = 'evaluated' "
                f"AND start_ms < ? ORDER BY start_ms {order} LIMIT ?",
                (before_ms if before_ms is not None else 2**62, limit),
            ).fetchall()
        return [Window(s, e) for s, e in rows]

    def save_reference(self, reference_id: str, kind: str, payload: bytes) -> None:
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO references_ VALUES (?, ?, ?, ?)",
                (reference_id, kind, int(time.time() * 1000), payload),
            )

    def latest_reference(self, kind: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT payload FROM references_ WHERE kind = ? "
                "ORDER BY created_at_ms DESC, rowid DESC LIMIT 1",
                (kind,),
            ).fetchone()
        return None if row is None else row[0]

    def prune(self, windows_before_ms: int, letters_before_ms: int) -> int:
        """Drop per-record rows of evaluated windows that ended before ``windows_before_ms``
        (event time) and dead letters received before ``letters_before_ms`` (wall clock)."""
        with self._lock, self._transaction():
            removed = self._db.execute(
                "DELETE FROM records WHERE window_start IN "
                "(SELECT start_ms FROM windows WHERE status = 'evaluated' AND end_ms < ?)",
                (windows_before_ms,),
            ).rowcount
            removed += self._db.execute(
                "DELETE FROM vectors WHERE window_start IN "
                "(SELECT start_ms FROM windows WHERE status = 'evaluated' AND end_ms < ?)",
                (windows_before_ms,),
            ).rowcount
            removed += self._db.execute(
                "DELETE FROM dead_letters WHERE received_at_ms < ?", (letters_before_ms,)
            ).rowcount
        return removed

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> _Transaction:
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


def sample_key(record_id: str) -> int:
    """A signed 64-bit hash of the id: the order of the bottom-k vector sample."""
    digest = hashlib.blake2b(record_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _by_name(rows: list[tuple[str, bytes, str]]) -> dict[str, list[tuple[str, bytes, str]]]:
    grouped: dict[str, list[tuple[str, bytes, str]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    return grouped


def _record_row(scored: ScoredRecord) -> tuple[Any, ...]:
    record = scored.record
    return (
        scored.window.start_ms,
        record.id,
        record.ts_ms,
        record.model,
        orjson.dumps(record.metadata),
        orjson.dumps(dict(scored.scores)),
        record.position.partition,
        record.position.offset,
        orjson.dumps(
            {"prompt": record.prompt, "response": record.response, "context": record.context}
        )
        if scored.keep_text
        else None,
    )


def _late_letter(scored: ScoredRecord, raw: bytes) -> DeadLetter:
    record = scored.record
    return DeadLetter(
        DeadLetterReason.LATE,
        f"window starting {scored.window.iso_start()} had already closed",
        raw,
        record.position,
        record.ts_ms,
        record.id,
    )


def _dead_letter_row(letter: DeadLetter, window: Window | None, now_ms: int) -> tuple[Any, ...]:
    return (
        letter.position.partition,
        letter.position.offset,
        letter.reason.value,
        letter.detail,
        letter.raw[:DEAD_LETTER_KEPT_BYTES],
        len(letter.raw),
        letter.ts_ms,
        letter.record_id,
        window.start_ms if window is not None else None,
        now_ms,
    )
