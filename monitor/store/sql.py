"""What the SQLite and PostgreSQL stores share: reads, results, references and pruning, in
SQL both databases speak (``?`` placeholders; PostgreSQL's connection rewrites them).

Each store supplies its schema, its connection primitives and its write path; window
contents are read per partition and merged (``monitor.window_state``), which is the same
code whether one worker wrote every partition or many workers wrote one each.
"""

from __future__ import annotations

import hashlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from functools import reduce
from typing import Any

import numpy as np
import orjson

from monitor.records import DeadLetter, DeadLetterReason
from monitor.store.base import ScoredRecord
from monitor.window_state import SampledVector, StoredRecord, WindowPartial
from monitor.windows import Window, WindowContents

# The dead-letter sink gets every byte; the store keeps this much of each, for counting
# and a look, so a flood of huge messages cannot fill memory or disk.
DEAD_LETTER_KEPT_BYTES = 65_536


class SqlTables(ABC):
    _lock: threading.RLock
    _vector_sample: int
    _example_chars: int
    # The vectors table's partition column, or a constant where the sample is per window.
    _VECTOR_PARTITION = "source_partition"

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute one statement; the number of rows it changed."""

    @abstractmethod
    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """One transaction; database errors inside it become ``StoreError``."""

    def _missing_partitions(self, window: Window) -> tuple[str, ...]:
        """Partitions a window was closed without (only a shared store closes partially)."""
        return ()

    def close_all_open(self) -> list[Window]:
        with self._lock, self._transaction():
            rows = self._rows(
                "UPDATE windows SET status = 'closed', closed_at_ms = ? "
                "WHERE status = 'open' RETURNING start_ms, end_ms",
                (wall_ms(),),
            )
        return sorted(Window(s, e) for s, e in rows)

    def window_contents(self, window: Window) -> WindowContents:
        with self._lock:
            records = self._rows(
                "SELECT source_partition, record_id, model, metadata, scores FROM records "
                "WHERE window_start = ?",
                (window.start_ms,),
            )
            letters = self._rows(
                "SELECT source_partition, reason, COUNT(*) FROM dead_letters "
                "WHERE window_start = ? GROUP BY source_partition, reason",
                (window.start_ms,),
            )
            vectors = self._rows(
                f"SELECT {self._VECTOR_PARTITION}, name, sample_key, record_id, vector, prompt "
                "FROM vectors WHERE window_start = ?",
                (window.start_ms,),
            )
            missing = self._missing_partitions(window)
        partials: dict[str, dict[str, Any]] = {}

        def part(partition: str) -> dict[str, Any]:
            return partials.setdefault(partition, {"records": {}, "letters": {}, "vectors": {}})

        for partition, record_id, model, metadata, scores in records:
            part(partition)["records"][record_id] = StoredRecord(
                model, orjson.loads(metadata), orjson.loads(scores)
            )
        for partition, reason, count in letters:
            part(partition)["letters"][reason] = count
        for partition, name, key, record_id, vector, prompt in vectors:
            part(partition)["vectors"].setdefault(name, []).append(
                SampledVector(key, record_id, np.frombuffer(vector, dtype=np.float32), prompt)
            )
        merged = reduce(
            WindowPartial.merge,
            (
                WindowPartial(
                    self._vector_sample,
                    p["records"],
                    p["letters"],
                    {name: tuple(sorted(samples)) for name, samples in p["vectors"].items()},
                )
                for p in partials.values()
            ),
            WindowPartial(self._vector_sample),
        )
        return merged.contents(window, missing)

    def results(self) -> list[tuple[Window, dict[str, Any]]]:
        with self._lock:
            rows = self._rows(
                "SELECT start_ms, end_ms, result FROM windows WHERE status = 'evaluated' "
                "ORDER BY start_ms"
            )
        return [(Window(s, e), orjson.loads(r)) for s, e, r in rows]

    def results_for(self, windows: Sequence[Window]) -> list[tuple[Window, dict[str, Any]]]:
        if not windows:
            return []
        with self._lock:
            rows = self._rows(
                "SELECT start_ms, end_ms, result FROM windows WHERE status = 'evaluated' "
                f"AND start_ms IN ({placeholders(windows)}) ORDER BY start_ms",
                [w.start_ms for w in windows],
            )
        return [(Window(s, e), orjson.loads(r)) for s, e, r in rows]

    def records_with_texts(
        self, window_starts: Sequence[int], record_ids: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Records of these windows whose texts were kept, plus any with these ids."""
        where = f"(window_start IN ({placeholders(window_starts)}) AND texts IS NOT NULL)"
        if record_ids:
            where += f" OR record_id IN ({placeholders(record_ids)})"
        with self._lock:
            rows = self._rows(
                "SELECT window_start, record_id, ts_ms, model, metadata, scores, texts "
                f"FROM records WHERE {where}",
                [*window_starts, *record_ids],
            )
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
            for start, record_id, ts_ms, model, metadata, scores, texts in sorted(
                rows, key=lambda row: (row[0], row[1])
            )
        ]

    def evaluated_windows(
        self, *, before_ms: int | None = None, limit: int, newest_first: bool = False
    ) -> list[Window]:
        """Evaluated windows starting before ``before_ms``, oldest or newest first."""
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            rows = self._rows(
                "SELECT start_ms, end_ms FROM windows WHERE status = 'evaluated' "
                f"AND start_ms < ? ORDER BY start_ms {order} LIMIT ?",
                (before_ms if before_ms is not None else 2**62, limit),
            )
        return [Window(s, e) for s, e in rows]

    def save_reference(self, reference_id: str, kind: str, payload: bytes) -> None:
        with self._lock, self._transaction():
            self._run(
                "INSERT INTO references_ (id, kind, created_at_ms, payload) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, "
                "created_at_ms = excluded.created_at_ms, payload = excluded.payload",
                (reference_id, kind, wall_ms(), payload),
            )

    def latest_reference(self, kind: str) -> bytes | None:
        with self._lock:
            rows = self._rows(
                "SELECT payload FROM references_ WHERE kind = ? "
                "ORDER BY created_at_ms DESC, id DESC LIMIT 1",
                (kind,),
            )
        return bytes(rows[0][0]) if rows else None

    def prune(self, windows_before_ms: int, letters_before_ms: int) -> int:
        """Drop per-record rows of evaluated windows that ended before ``windows_before_ms``
        (event time) and dead letters received before ``letters_before_ms`` (wall clock)."""
        old = "SELECT start_ms FROM windows WHERE status = 'evaluated' AND end_ms < ?"
        with self._lock, self._transaction():
            removed = self._run(
                f"DELETE FROM records WHERE window_start IN ({old})", (windows_before_ms,)
            )
            removed += self._run(
                f"DELETE FROM vectors WHERE window_start IN ({old})", (windows_before_ms,)
            )
            removed += self._run(
                "DELETE FROM dead_letters WHERE received_at_ms < ?", (letters_before_ms,)
            )
        return removed

    # -- the write path's pieces -----------------------------------------------------------

    def _insert_records(self, scored: Sequence[ScoredRecord]) -> int:
        """Records new to the store; a (window, id) seen before is not counted again."""
        self._run_many(
            "INSERT INTO windows (start_ms, end_ms, status) VALUES (?, ?, 'open') "
            "ON CONFLICT DO NOTHING",
            sorted({(s.window.start_ms, s.window.end_ms) for s in scored}),
        )
        accepted = self._run_many(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [_record_row(s) for s in scored],
        )
        return max(accepted, 0)

    def _has_record(self, scored: ScoredRecord) -> bool:
        return bool(
            self._rows(
                "SELECT 1 FROM records WHERE window_start = ? AND record_id = ?",
                (scored.window.start_ms, scored.record.id),
            )
        )

    def _split_late(
        self, candidates: Iterable[ScoredRecord]
    ) -> tuple[int, list[tuple[DeadLetter, Window | None]]]:
        """Records for closed windows: duplicates of stored ones, else late dead letters."""
        duplicates = 0
        late: list[tuple[DeadLetter, Window | None]] = []
        for candidate in candidates:
            if self._has_record(candidate):
                duplicates += 1
            else:
                late.append((_late_letter(candidate), candidate.window))
        return duplicates, late

    def _insert_dead_letters(self, letters: Sequence[tuple[DeadLetter, Window | None]]) -> int:
        now_ms = wall_ms()
        return max(
            self._run_many(
                "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [_dead_letter_row(d, w, now_ms) for d, w in letters],
            ),
            0,
        )

    def _vector_rows(self, scored: Sequence[ScoredRecord]) -> list[tuple[Any, ...]]:
        return [
            (
                s.window.start_ms,
                name,
                s.record.position.partition,
                sample_key(s.record.id),
                s.record.id,
                np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
                s.record.prompt[: self._example_chars],
            )
            for s in scored
            for name, vector in s.vectors.items()
        ]


def sample_key(record_id: str) -> int:
    """A signed 64-bit hash of the id: the order of the bottom-k vector sample."""
    digest = hashlib.blake2b(record_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def placeholders(values: Sequence[Any]) -> str:
    """``?,?,?`` for an IN list; ``NULL`` (matches nothing) for an empty one."""
    return ",".join("?" * len(values)) or "NULL"


def wall_ms() -> int:
    return int(time.time() * 1000)


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


def _late_letter(scored: ScoredRecord) -> DeadLetter:
    record = scored.record
    return DeadLetter(
        DeadLetterReason.LATE,
        f"window starting {scored.window.iso_start()} had already closed",
        scored.raw,
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
