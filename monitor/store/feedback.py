"""Human feedback. Feedback for an id the store does not hold is kept and marked
``known = 0``, never refused: the record may have been pruned, or not arrived yet."""

from __future__ import annotations

import time
from collections.abc import Sequence

from monitor.store.base import FeedbackEntry
from monitor.store.sql import SqlTables
from monitor.windows import Window


class FeedbackTables(SqlTables):
    def add_feedback(
        self, record_id: str, label: str, note: str | None, reviewer: str | None
    ) -> FeedbackEntry:
        with self._lock, self._transaction():
            found = self._rows(
                "SELECT window_start FROM records WHERE record_id = ? "
                "ORDER BY window_start DESC LIMIT 1",
                (record_id,),
            )
            window_start = found[0][0] if found else None
            (entry_id,) = self._rows(
                "INSERT INTO feedback (record_id, label, note, reviewer, received_ms, "
                "window_start, known) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    record_id,
                    label,
                    note,
                    reviewer,
                    int(time.time() * 1000),
                    window_start,
                    bool(found),
                ),
            )[0]
        return FeedbackEntry(int(entry_id), record_id, label, window_start, bool(found))

    def feedback_counts(self, window: Window) -> dict[str, int]:
        with self._lock:
            rows = self._rows(
                "SELECT label, COUNT(*) FROM feedback WHERE window_start = ? GROUP BY label",
                (window.start_ms,),
            )
        return dict(rows)

    def flagged_record_ids(
        self, labels: Sequence[str], window_starts: Sequence[int]
    ) -> list[tuple[str, str]]:
        """(record id, label) of feedback with one of ``labels`` on records of these windows."""
        if not labels or not window_starts:
            return []
        label_marks = ",".join("?" * len(labels))
        window_marks = ",".join("?" * len(window_starts))
        with self._lock:
            rows = self._rows(
                f"SELECT record_id, label FROM feedback WHERE label IN ({label_marks}) "
                f"AND window_start IN ({window_marks}) ORDER BY id",
                (*labels, *window_starts),
            )
        return [(record_id, label) for record_id, label in rows]
