"""The outbox and alert-rule state in SQLite: written with the window result, so an alert
is never decided without being queued, nor queued twice."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from monitor.store.base import OutboxItem
from monitor.windows import Window

OUTBOX_SCHEMA = """
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
"""


class OutboxTables:
    """Mixed into SQLiteStore, which provides the connection, lock and transactions."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    def _transaction(self) -> Any: ...

    def save_result(
        self,
        window: Window,
        result: Mapping[str, Any],
        *,
        rule_states: Mapping[str, Mapping[str, Any]] | None = None,
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE windows SET status = 'evaluated', result = ? WHERE start_ms = ?",
                (orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), window.start_ms),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO rule_states VALUES (?, ?)",
                [(rule, orjson.dumps(dict(state))) for rule, state in (rule_states or {}).items()],
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (id, sink, payload, created_ms, next_attempt_ms, "
                "status) VALUES (?, ?, ?, ?, ?, 'pending')",
                [(i.id, i.sink, i.payload, i.created_ms, i.created_ms) for i in outbox],
            )

    def rule_states(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT rule, state FROM rule_states").fetchall()
        return {rule: orjson.loads(state) for rule, state in rows}

    def due_outbox(self, now_ms: int, limit: int) -> list[OutboxItem]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, sink, payload, created_ms, attempts FROM outbox "
                "WHERE status = 'pending' AND next_attempt_ms <= ? "
                "ORDER BY next_attempt_ms LIMIT ?",
                (now_ms, limit),
            ).fetchall()
        return [OutboxItem(*row) for row in rows]

    def outbox_settle(
        self, item: OutboxItem, status: str, *, next_attempt_ms: int = 0, error: str | None = None
    ) -> None:
        """``sent``, ``failed``, or ``pending`` again with one more attempt counted."""
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_ms = ?, "
                "last_error = ? WHERE id = ? AND sink = ?",
                (status, next_attempt_ms, error, item.id, item.sink),
            )

    def outbox_wake(self) -> int:
        """Make every pending item due now (at start-up: what waited is resent at once)."""
        with self._lock, self._transaction():
            return self._db.execute(
                "UPDATE outbox SET next_attempt_ms = 0 WHERE status = 'pending'"
            ).rowcount

    def outbox_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT status, COUNT(*) FROM outbox GROUP BY status"
            ).fetchall()
        return {"pending": 0, "sent": 0, "failed": 0} | dict(rows)

    def outbox_entries(self, limit: int) -> list[dict[str, Any]]:
        """The newest outbox entries with their delivery state (for the API)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, sink, payload, status, attempts, last_error FROM outbox "
                "ORDER BY created_ms DESC, id LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {
                "id": id_,
                "sink": sink,
                "status": status,
                "attempts": attempts,
                "last_error": error,
                **orjson.loads(payload),
            }
            for id_, sink, payload, status, attempts, error in rows
        ]
