"""The scoring stage: every configured scorer over one micro-batch.

A scorer that fails on a batch is retried record by record, so one poisonous text
dead-letters alone instead of taking its batch (or the daemon) down with it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors import DetectorError
from detectors.scorers import Scorer, create_scorer, output_names
from monitor.config import ScorerConfig
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.records import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NamedScorer:
    name: str
    scorer: Scorer
    outputs: tuple[str, ...]


def build_scorers(configs: Sequence[ScorerConfig]) -> list[NamedScorer]:
    """Instantiate configured scorers; a bad one raises ConfigError naming its key."""
    built: list[NamedScorer] = []
    seen: dict[str, str] = {}
    for index, config in enumerate(configs):
        try:
            scorer = create_scorer(config.type, config.options)
        except DetectorError as exc:
            raise ConfigError(f"scorers[{index}]: {exc}") from None
        outputs = output_names(config.instance_name, scorer)
        for output in outputs:
            if output in seen:
                raise ConfigError(
                    f"scorers[{index}]: output {output!r} is also produced by {seen[output]!r}"
                )
            seen[output] = config.instance_name
        built.append(NamedScorer(config.instance_name, scorer, outputs))
    return built


@dataclass(frozen=True, slots=True)
class ScoringFailure:
    record: Record
    detail: str


@dataclass(slots=True)
class RecordScores:
    """One record's scores (floats, NaN where a scorer had no answer) and vectors."""

    scores: dict[str, float] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


class ScoringStage:
    def __init__(
        self,
        scorers: Sequence[NamedScorer],
        metrics: Metrics,
        lock: threading.Lock | None = None,
    ):
        self.scorers = list(scorers)
        self._metrics = metrics
        # Shared with window evaluation, which re-scores texts for the bias sensitivity check.
        self._lock = lock or threading.Lock()

    def score(
        self, records: Sequence[Record]
    ) -> tuple[list[tuple[Record, RecordScores]], list[ScoringFailure]]:
        """Scores per record (input order kept) and the records no scorer could score."""
        rows = [RecordScores() for _ in records]
        failed: dict[int, str] = {}
        for named in self.scorers:
            started = time.perf_counter()
            try:
                self._apply(named, records, rows, range(len(records)))
            except Exception as exc:
                log.warning(
                    "scorer failed on a batch; retrying record by record",
                    extra={"scorer": named.name, "error": repr(exc)},
                )
                for index in range(len(records)):
                    if index in failed:
                        continue
                    try:
                        self._apply(named, [records[index]], rows, [index])
                    except Exception as record_exc:
                        failed[index] = f"scorer {named.name!r} failed: {record_exc!r}"[:500]
            self._metrics.scorer_seconds.labels(scorer=named.name).observe(
                time.perf_counter() - started
            )
        scored = [(r, rows[i]) for i, r in enumerate(records) if i not in failed]
        failures = [ScoringFailure(records[i], detail) for i, detail in sorted(failed.items())]
        return scored, failures

    def _apply(
        self,
        named: NamedScorer,
        records: Sequence[Record],
        rows: list[RecordScores],
        indices: Sequence[int],
    ) -> None:
        with self._lock:
            results = named.scorer.score(records)
        for suffix, output in zip(named.scorer.outputs, named.outputs, strict=True):
            values = np.asarray(results[suffix], dtype=np.float64)
            if values.ndim == 2 and values.shape[0] == len(records):
                vectors = values.astype(np.float32)
                for index, vector in zip(indices, vectors, strict=True):
                    rows[index].vectors[output] = vector
                continue
            if values.shape != (len(records),):
                raise DetectorError(
                    f"scorer {named.name!r} returned shape {values.shape} for {output!r}, "
                    f"expected ({len(records)},) or ({len(records)}, d)"
                )
            for index, value in zip(indices, values.tolist(), strict=True):
                rows[index].scores[output] = value if math.isfinite(value) else math.nan
