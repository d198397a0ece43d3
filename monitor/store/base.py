"""The store contract: SQLite for one worker, PostgreSQL for many sharing one store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from monitor.records import DeadLetter, Record
from monitor.windows import Window, WindowContents


@dataclass(frozen=True, slots=True)
class ScoredRecord:
    record: Record
    window: Window
    scores: Mapping[str, float]
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    keep_text: bool = False  # keep prompt/response for retraining exports
    raw: bytes = b""  # the original message, for a dead letter if its window has closed


@dataclass(frozen=True, slots=True)
class BatchWrite:
    """One micro-batch's effects, persisted in a single transaction."""

    on_time: Sequence[ScoredRecord]
    # Records whose window had closed: duplicates of stored ones, otherwise late.
    late_candidates: Sequence[ScoredRecord]
    dead_letters: Sequence[tuple[DeadLetter, Window | None]]
    watermark: Mapping[str, int]
    positions: Mapping[str, int]  # next offset to read, per partition
    close_through_ms: int | None  # windows whose end is at or before this are closed


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    accepted: int
    duplicates: int
    late: Sequence[DeadLetter] = field(default_factory=tuple)
    new_dead_letters: int = 0
    closed: Sequence[Window] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification for one sink; ``id`` is its idempotency key."""

    id: str
    sink: str
    payload: bytes
    created_ms: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    id: int
    record_id: str
    label: str
    window_start_ms: int | None
    known: bool  # the store holds a record with this id


@dataclass(frozen=True, slots=True)
class SavedState:
    partitions: frozenset[str]
    watermark: Mapping[str, int]  # of those the store has seen records from
    positions: Mapping[str, int]  # next offset to read, of those it has read from


class Store(Protocol):
    """Durable window state. Every method is safe to call from the scheduler's thread."""

    def claim_partitions(self, partitions: Iterable[str]) -> SavedState:
        """Partitions this worker was just given: their stored positions (where to seek) and
        watermarks. A shared store also registers them, so they hold back its watermark."""
        ...

    def evaluation_lease(self) -> bool:
        """Whether this worker may close, evaluate and prune windows and deliver the outbox
        now: at most one worker of a shared store at a time."""
        ...

    def write_batch(self, batch: BatchWrite) -> BatchOutcome: ...

    def close_all_open(self) -> list[Window]: ...

    def pending_windows(self) -> list[Window]:
        """Closed windows waiting for evaluation (a shared store closes ready ones first)."""
        ...

    def window_contents(self, window: Window) -> WindowContents: ...

    def save_result(
        self,
        window: Window,
        result: Mapping[str, Any],
        *,
        rule_states: Mapping[str, Mapping[str, Any]] | None = None,
        outbox: Sequence[OutboxItem] = (),
    ) -> None:
        """Window result, rule states and queued notifications, in one transaction."""
        ...

    def rule_states(self) -> dict[str, dict[str, Any]]: ...

    def due_outbox(self, now_ms: int, limit: int) -> list[OutboxItem]: ...

    def outbox_settle(
        self, item: OutboxItem, status: str, *, next_attempt_ms: int = 0, error: str | None = None
    ) -> None: ...

    def outbox_wake(self) -> int: ...

    def outbox_counts(self) -> dict[str, int]: ...

    def outbox_entries(self, limit: int) -> list[dict[str, Any]]: ...

    def add_feedback(
        self, record_id: str, label: str, note: str | None, reviewer: str | None
    ) -> FeedbackEntry: ...

    def feedback_counts(self, window: Window) -> dict[str, int]: ...

    def flagged_record_ids(
        self, labels: Sequence[str], window_starts: Sequence[int]
    ) -> list[tuple[str, str]]: ...

    def results(self) -> list[tuple[Window, dict[str, Any]]]: ...

    def results_for(self, windows: Sequence[Window]) -> list[tuple[Window, dict[str, Any]]]: ...

    def records_with_texts(
        self, window_starts: Sequence[int], record_ids: Sequence[str] = ()
    ) -> list[dict[str, Any]]: ...

    def evaluated_windows(
        self, *, before_ms: int | None = None, limit: int, newest_first: bool = False
    ) -> list[Window]: ...

    def save_reference(self, reference_id: str, kind: str, payload: bytes) -> None: ...

    def latest_reference(self, kind: str) -> bytes | None: ...

    def prune(self, windows_before_ms: int, letters_before_ms: int) -> int: ...

    def close(self) -> None: ...
