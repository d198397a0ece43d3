"""One micro-batch through parse -> score -> window, as a single store write.

The caller persists the returned ``BatchWrite``, delivers dead letters, and only then
commits the source positions it carries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.metrics import Metrics
from monitor.records import DeadLetter, DeadLetterReason, RawMessage, Record, parse
from monitor.scoring import ScoringStage
from monitor.store import BatchOutcome, BatchWrite, SavedState, ScoredRecord
from monitor.windows import Watermark, Window, window_of


@dataclass
class Totals:
    """What this process has read so far; ``read == valid + invalid``."""

    read: int = 0
    valid: int = 0
    invalid: int = 0
    late: int = 0
    duplicates: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        return {
            "read": self.read,
            "valid": self.valid,
            "invalid": self.invalid,
            "late": self.late,
            "duplicates": self.duplicates,
        }


class Pipeline:
    def __init__(
        self,
        *,
        scoring: ScoringStage,
        metrics: Metrics,
        window_ms: int,
        lateness_ms: int,
        max_bytes: int,
        max_future_ms: int,
        keep_text: Callable[[Mapping[str, float]], bool] = lambda scores: False,
    ):
        self._keep_text = keep_text
        self._scoring = scoring
        self._metrics = metrics
        self._window_ms = window_ms
        self._lateness_ms = lateness_ms
        self._max_bytes = max_bytes
        self._max_future_ms = max_future_ms
        self.watermark = Watermark()
        self._positions: dict[str, int] = {}
        self.totals = Totals()

    def prepare(self, messages: Sequence[RawMessage]) -> BatchWrite:
        """Parse, score and assign windows; nothing is persisted yet."""
        max_ts_ms = int(time.time() * 1000) + self._max_future_ms
        records: list[tuple[Record, bytes]] = []
        letters: list[DeadLetter] = []
        for message in messages:
            parsed = parse(message, max_bytes=self._max_bytes, max_ts_ms=max_ts_ms)
            if isinstance(parsed, Record):
                records.append((parsed, message.value))
            else:
                letters.append(parsed)
            self._positions[message.position.partition] = max(
                self._positions.get(message.position.partition, 0), message.next_offset
            )
        raw_of = {id(record): raw for record, raw in records}
        scored, failures = self._scoring.score([record for record, _ in records])
        letters.extend(
            DeadLetter(
                DeadLetterReason.SCORING_FAILED,
                failure.detail,
                raw_of[id(failure.record)],
                failure.record.position,
                failure.record.ts_ms,
                failure.record.id,
            )
            for failure in failures
        )

        on_time: list[ScoredRecord] = []
        late: list[ScoredRecord] = []
        for record, result in scored:
            window = window_of(record.ts_ms, self._window_ms)
            item = ScoredRecord(
                record,
                window,
                result.scores,
                result.vectors,
                self._keep_text(result.scores),
                raw_of[id(record)],
            )
            (late if self._closed(item.window) else on_time).append(item)
            self.watermark.observe(record.position.partition, record.ts_ms)

        self._count(len(messages), letters, len(scored))
        return BatchWrite(
            on_time=on_time,
            late_candidates=late,
            dead_letters=[(letter, self._attribute(letter)) for letter in letters],
            watermark=self.watermark.snapshot(),
            positions=dict(self._positions),
            close_through_ms=self.close_through_ms(),
        )

    def close_through_ms(self) -> int | None:
        watermark = self.watermark.value
        return None if watermark is None else watermark - self._lateness_ms

    def record_outcome(self, outcome: BatchOutcome) -> None:
        self.totals.duplicates += outcome.duplicates
        self.totals.late += len(outcome.late)
        self._metrics.duplicates.inc(outcome.duplicates)
        self._metrics.late.inc(len(outcome.late))
        if self.watermark.value is not None:
            self._metrics.watermark.set(self.watermark.value / 1000)

    def adopt(self, state: SavedState) -> None:
        """Partitions just assigned, with what the store holds for them: their watermark
        resumes where it was (an unseen partition holds the watermark back until it has a
        record), their positions where the source was told to seek."""
        self.watermark.assign(state.partitions)
        for partition, ts_ms in state.watermark.items():
            self.watermark.observe(partition, ts_ms)
        self._positions.update(state.positions)

    def forget(self, partitions: set[str]) -> None:
        """Partitions revoked by a rebalance: stop tracking their progress."""
        self.watermark.forget(partitions)
        for partition in partitions:
            self._positions.pop(partition, None)

    def _closed(self, window: Window) -> bool:
        through = self.close_through_ms()
        return through is not None and window.end_ms <= through

    def _attribute(self, letter: DeadLetter) -> Window | None:
        """Invalid records count in the window of their own event time when it can be read,
        else in the window the watermark is in."""
        ts_ms = letter.ts_ms if letter.ts_ms is not None else self.watermark.value
        return None if ts_ms is None else window_of(ts_ms, self._window_ms)

    def _count(self, read: int, letters: Sequence[DeadLetter], scored: int) -> None:
        totals = self.totals
        totals.read += read
        totals.invalid += len(letters)
        totals.valid += read - len(letters)
        self._metrics.consumed.inc(read)
        self._metrics.scored.inc(scored)
        for letter in letters:
            totals.by_reason[letter.reason.value] = totals.by_reason.get(letter.reason.value, 0) + 1
            self._metrics.invalid.labels(reason=letter.reason.value).inc()
