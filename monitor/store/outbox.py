"""The outbox and alert-rule state: written with the window result, so an alert is never
decided without being queued, nor queued twice (a window is saved as evaluated only once,
whichever worker evaluated it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from monitor.errors import AlreadyEvaluated
from monitor.store.base import OutboxItem
from monitor.store.sql import SqlTables
from monitor.windows import Window


class OutboxTables(SqlTables):
    def save_result(
        self,
        window: Window,
        result: Mapping[str, Any],
        *,
        rule_states: Mapping[str, Mapping[str, Any]] | None = None,
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        with self._lock, self._transaction():
            saved = self._run(
                "UPDATE windows SET status = 'evaluated', result = ? "
                "WHERE start_ms = ? AND status = 'closed'",
                (orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), window.start_ms),
            )
            if saved == 0:
                # Rolls the transaction back: another evaluator saved this window first.
                raise AlreadyEvaluated(f"window {window.iso_start()} is not waiting for a result")
            self._run_many(
                "INSERT INTO rule_states VALUES (?, ?) "
                "ON CONFLICT (rule) DO UPDATE SET state = excluded.state",
                [(rule, orjson.dumps(dict(state))) for rule, state in (rule_states or {}).items()],
            )
            self._run_many(
                "INSERT INTO outbox (id, sink, payload, created_ms, next_attempt_ms, "
                "status) VALUES (?, ?, ?, ?, ?, 'pending') ON CONFLICT DO NOTHING",
                [(i.id, i.sink, i.payload, i.created_ms, i.created_ms) for i in outbox],
            )

    def rule_states(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._rows("SELECT rule, state FROM rule_states")
        return {rule: orjson.loads(state) for rule, state in rows}

    def due_outbox(self, now_ms: int, limit: int) -> list[OutboxItem]:
        with self._lock:
            rows = self._rows(
                "SELECT id, sink, payload, created_ms, attempts FROM outbox "
                "WHERE status = 'pending' AND next_attempt_ms <= ? "
                "ORDER BY next_attempt_ms LIMIT ?",
                (now_ms, limit),
            )
        return [OutboxItem(i, sink, bytes(p), c, a) for i, sink, p, c, a in rows]

    def outbox_settle(
        self, item: OutboxItem, status: str, *, next_attempt_ms: int = 0, error: str | None = None
    ) -> None:
        """``sent``, ``failed``, or ``pending`` again with one more attempt counted."""
        with self._lock, self._transaction():
            self._run(
                "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_ms = ?, "
                "last_error = ? WHERE id = ? AND sink = ?",
                (status, next_attempt_ms, error, item.id, item.sink),
            )

    def outbox_wake(self) -> int:
        """Make every pending item due now (at start-up: what waited is resent at once)."""
        with self._lock, self._transaction():
            return self._run("UPDATE outbox SET next_attempt_ms = 0 WHERE status = 'pending'")

    def outbox_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._rows("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        return {"pending": 0, "sent": 0, "failed": 0} | dict(rows)

    def outbox_entries(self, limit: int) -> list[dict[str, Any]]:
        """The newest outbox entries with their delivery state (for the API)."""
        with self._lock:
            rows = self._rows(
                "SELECT id, sink, payload, status, attempts, last_error FROM outbox "
                "ORDER BY created_ms DESC, id LIMIT ?",
                (limit,),
            )
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
