"""Human feedback in SQLite. Feedback for an id the store does not hold is kept and marked
``known = 0``, never refused: the record may have been pruned, or not arrived yet."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

from monitor.store.base import FeedbackEntry
from monitor.windows import Window

FEEDBACK_SCHEMA = """
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


class FeedbackTables:
    """Mixed into SQLiteStore, which provides the connection, lock and transactions."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    def _transaction(self) -> Any: ...

    def add_feedback(
        self, record_id: str, label: str, note: str | None, reviewer: str | None
    ) -> FeedbackEntry:
        with self._lock, self._transaction():
            row = self._db.execute(
                "SELECT window_start FROM records WHERE record_id = ? "
                "ORDER BY window_start DESC LIMIT 1",
                (record_id,),
            ).fetchone()
            window_start = row[0] if row else None
            cursor = self._db.execute(
                "INSERT INTO feedback (record_id, label, note, reviewer, received_ms, "
                "window_start, known) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record_id,
                    label,
                    note,
                    reviewer,
                    int(time.time() * 1000),
                    window_start,
                    bool(row),
                ),
            )
        return FeedbackEntry(int(cursor.lastrowid or 0), record_id, label, window_start, bool(row))

    def feedback_counts(self, window: Window) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT label, COUNT(*) FROM feedback WHERE window_start = ? GROUP BY label",
                (window.start_ms,),
            ).fetchall()
        return dict(rows)

    def flagged_record_ids(
        self, labels: Sequence[str], window_starts: Sequence[int]
    ) -> list[tuple[str, str]]:
        """(record id, label) of feedback with one of ``labels`` on records of these windows."""
        label_marks = ",".join("?" * len(labels))
        window_marks = ",".join("?" * len(window_starts))
        with self._lock:
            return self._db.execute(
                f"SELECT record_id, label FROM feedback WHERE label IN ({label_marks}) "
                f"AND window_start IN ({window_marks}) ORDER BY id",
                (*labels, *window_starts),
            ).fetchall()
