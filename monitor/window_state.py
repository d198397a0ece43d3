"""Partial window state: what one partition contributed to one window, and how partials merge.

Every worker of a consumer group persists a partial per (window, partition); evaluation
merges them. The merge is associative and commutative and ignores records seen twice, so
partials from any number of workers, combined in any order, give the evaluation inputs one
worker seeing all the partitions would have had:

- records: exact per-record scores, model and metadata, keyed by record id (union);
- dead letters: counts by reason, ``late`` included (sum);
- vectors: per vector name, the ``vector_sample`` records whose id hashes lowest
  (bottom-k: the lowest k of the union is the lowest k of the whole).

Records stay exact rather than sketched: the store keeps them until ``store.retention``
anyway (for feedback and retraining exports), and exact quantiles and drift inputs make a
scaled-out run's results equal a single worker's.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.records import DeadLetterReason
from monitor.windows import Window, WindowContents


@dataclass(frozen=True, slots=True)
class StoredRecord:
    model: str
    metadata: Mapping[str, Any]
    scores: Mapping[str, float]


@dataclass(frozen=True, slots=True, order=True)
class SampledVector:
    key: int  # the record id's hash: the bottom-k order
    record_id: str
    vector: np.ndarray = field(compare=False)
    prompt: str = field(compare=False)


@dataclass(frozen=True)
class WindowPartial:
    vector_sample: int
    records: Mapping[str, StoredRecord] = field(default_factory=dict)
    letters: Mapping[str, int] = field(default_factory=dict)  # dead letters by reason
    vectors: Mapping[str, tuple[SampledVector, ...]] = field(default_factory=dict)

    def merge(self, other: WindowPartial) -> WindowPartial:
        names = sorted(set(self.vectors) | set(other.vectors))
        return WindowPartial(
            vector_sample=self.vector_sample,
            records={**other.records, **self.records},
            letters=dict(Counter(self.letters) + Counter(other.letters)),
            vectors={
                name: _bottom_k(
                    (*self.vectors.get(name, ()), *other.vectors.get(name, ())),
                    self.vector_sample,
                )
                for name in names
            },
        )

    def contents(self, window: Window, missing_partitions: tuple[str, ...] = ()) -> WindowContents:
        """Evaluation inputs, records in id order whatever order the partials came in."""
        ids = sorted(self.records)
        rows = [self.records[record_id] for record_id in ids]
        names = sorted({name for row in rows for name in row.scores})
        by_reason = dict(self.letters)
        late = by_reason.pop(DeadLetterReason.LATE.value, 0)
        return WindowContents(
            window=window,
            scores={
                name: np.array([row.scores.get(name, np.nan) for row in rows], dtype=np.float64)
                for name in names
            },
            models=tuple(row.model for row in rows),
            metadata=tuple(row.metadata for row in rows),
            invalid_by_reason=by_reason,
            late_count=late,
            vectors={
                name: np.stack([sample.vector for sample in samples])
                for name, samples in self.vectors.items()
                if samples
            },
            vector_prompts={
                name: tuple(sample.prompt for sample in samples)
                for name, samples in self.vectors.items()
                if samples
            },
            missing_partitions=missing_partitions,
        )


def _bottom_k(samples: tuple[SampledVector, ...], k: int) -> tuple[SampledVector, ...]:
    unique = {sample.record_id: sample for sample in samples}.values()
    return tuple(heapq.nsmallest(k, unique))
