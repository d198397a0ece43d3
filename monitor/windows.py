"""Event-time tumbling windows: pure bounds maths and the watermark that closes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np


@dataclass(frozen=True, slots=True, order=True)
class Window:
    start_ms: int
    end_ms: int

    def iso_start(self) -> str:
        return iso(self.start_ms)

    def iso_end(self) -> str:
        return iso(self.end_ms)


def iso(ts_ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` suffix."""
    return (
        datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def window_of(ts_ms: int, size_ms: int) -> Window:
    """The epoch-aligned tumbling window holding ``ts_ms``."""
    start = ts_ms - ts_ms % size_ms
    return Window(start, start + size_ms)


def is_closed(window: Window, watermark_ms: int | None, lateness_ms: int) -> bool:
    """A window closes once the watermark has passed its end plus the allowed lateness."""
    return watermark_ms is not None and watermark_ms >= window.end_ms + lateness_ms


class Watermark:
    """Event-time progress: the slowest partition's newest event time.

    Taking the minimum over partitions keeps a lagging partition's records on time while
    another races ahead; a partition assigned but not yet heard from holds the watermark
    back (``None``) until it has a record or the source is declared idle.
    """

    def __init__(self, per_partition: Mapping[str, int] | None = None):
        self._max_ts: dict[str, int | None] = dict(per_partition or {})

    def assign(self, partitions: Iterable[str]) -> None:
        for partition in partitions:
            self._max_ts.setdefault(partition, None)

    def observe(self, partition: str, ts_ms: int) -> None:
        current = self._max_ts.get(partition)
        if current is None or ts_ms > current:
            self._max_ts[partition] = ts_ms

    def advance_to(self, ts_ms: int) -> None:
        """Move every partition forward to ``ts_ms`` (an idle source at wall-clock time)."""
        for partition in list(self._max_ts):
            self.observe(partition, ts_ms)

    def forget(self, partitions: Iterable[str]) -> None:
        """Drop partitions this worker no longer owns so they cannot hold the watermark back."""
        for partition in partitions:
            self._max_ts.pop(partition, None)

    @property
    def value(self) -> int | None:
        values = list(self._max_ts.values())
        if not values or None in values:
            return None
        return min(v for v in values if v is not None)

    def snapshot(self) -> dict[str, int]:
        return {p: ts for p, ts in self._max_ts.items() if ts is not None}


@dataclass(frozen=True, slots=True)
class WindowContents:
    """Everything evaluation needs from one closed window, as the store holds it."""

    window: Window
    scores: Mapping[str, np.ndarray]  # score name -> one value per record, in store order
    models: tuple[str, ...]
    metadata: tuple[Mapping[str, object], ...]
    invalid_by_reason: Mapping[str, int]
    late_count: int
    # Vector name -> a bounded uniform sample of the window's vectors (k, d), with the
    # prompts of the sampled records in the same order (for explaining embedding drift).
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    vector_prompts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Partitions the window was closed without (after windows.partial_after): a partial result.
    missing_partitions: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.models)
