"""Prometheus metrics on an injected registry (no module-level globals)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric the daemon exports. Counters count processing events (at-least-once)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self._lag_partitions: set[str] = set()
        self.consumed = Counter(
            "alignwatch_records_consumed", "Messages read from the source.", registry=registry
        )
        self.invalid = Counter(
            "alignwatch_records_invalid",
            "Messages dead-lettered, by reason.",
            ["reason"],
            registry=registry,
        )
        self.scored = Counter(
            "alignwatch_records_scored", "Records scored by every scorer.", registry=registry
        )
        self.late = Counter(
            "alignwatch_records_late",
            "Valid records whose window had already closed (dead-lettered as late).",
            registry=registry,
        )
        self.duplicates = Counter(
            "alignwatch_records_duplicate",
            "Re-delivered records already counted in their window.",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "alignwatch_batch_duration_seconds",
            "Time to parse, score and persist one micro-batch.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "alignwatch_batch_size_records",
            "Messages per micro-batch.",
            buckets=(1, 8, 32, 64, 128, 256, 512, 1024, 4096),
            registry=registry,
        )
        self.scorer_seconds = Histogram(
            "alignwatch_scorer_duration_seconds",
            "Time one scorer spends on one micro-batch.",
            ["scorer"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            "alignwatch_consumer_lag_records",
            "Messages behind the end of the log, per partition.",
            ["partition"],
            registry=registry,
        )
        self.watermark = Gauge(
            "alignwatch_watermark_timestamp_seconds",
            "Event-time watermark (Unix seconds).",
            registry=registry,
        )
        self.windows_evaluated = Counter(
            "alignwatch_windows_evaluated", "Windows evaluated.", registry=registry
        )
        self.windows_partial = Counter(
            "alignwatch_windows_partial",
            "Windows closed without every partition (windows.partial_after), evaluated on "
            "what had arrived.",
            registry=registry,
        )
        self.evaluation_lease = Gauge(
            "alignwatch_evaluation_lease",
            "1 while this worker holds the lease to close and evaluate windows.",
            registry=registry,
        )
        self.evaluation_errors = Counter(
            "alignwatch_evaluation_errors",
            "Window evaluations that failed and will be retried.",
            registry=registry,
        )
        self.window_metric = Gauge(
            "alignwatch_window_metric",
            "Aggregates of the most recently evaluated window.",
            ["metric"],
            registry=registry,
        )
        self.window_end = Gauge(
            "alignwatch_window_end_timestamp_seconds",
            "End of the most recently evaluated window (Unix seconds).",
            registry=registry,
        )

        self.drift_p_value = Gauge(
            "alignwatch_drift_p_value",
            "Adjusted p-value of each drift test in the most recently tested window.",
            ["test"],
            registry=registry,
        )
        self.drift_detected = Gauge(
            "alignwatch_drift_detected",
            "1 when the most recently tested window drifted from its reference, else 0.",
            registry=registry,
        )

        self.alerts_firing = Gauge(
            "alignwatch_alerts_firing",
            "1 while an alert rule is firing, else 0.",
            ["rule", "severity"],
            registry=registry,
        )
        self.deliveries = Counter(
            "alignwatch_deliveries",
            "Notifications to sinks by outcome (sent, or failed after give_up_after).",
            ["sink", "outcome"],
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "alignwatch_outbox_pending",
            "Notifications queued and not yet acknowledged.",
            registry=registry,
        )
        self.triggers = Counter(
            "alignwatch_triggers",
            "Retraining triggers fired, by trigger rule.",
            ["trigger"],
            registry=registry,
        )

        self.feedback = Counter(
            "alignwatch_feedback",
            "Human feedback received, by label and whether the record id is known.",
            ["label", "known"],
            registry=registry,
        )

    def watch_scorers(self, scorers: Mapping[str, Any]) -> None:
        """Export the running counters model scorers keep (``.stats``), read at scrape time."""
        self.registry.register(_ScorerStats(scorers))

    def set_drift(self, result: Mapping[str, Any]) -> None:
        self.drift_detected.set(1 if result["drifted"] else 0)
        for key, outcome in result["tests"].items():
            if outcome["adjusted_p_value"] is not None:
                self.drift_p_value.labels(test=key).set(outcome["adjusted_p_value"])

    def set_lag(self, lag: Mapping[str, int]) -> None:
        """Current lag per partition; partitions no longer reported (revoked) are dropped."""
        for partition in self._lag_partitions - lag.keys():
            self.lag.remove(partition)
        for partition, value in lag.items():
            self.lag.labels(partition=partition).set(value)
        self._lag_partitions = set(lag)

    def set_window(self, end_ms: int, metrics: Mapping[str, float | None]) -> None:
        self.window_end.set(end_ms / 1000)
        for name, value in metrics.items():
            if value is not None:
                self.window_metric.labels(metric=name).set(value)


class _ScorerStats(Collector):
    def __init__(self, scorers: Mapping[str, Any]):
        self._scorers = {name: s for name, s in scorers.items() if hasattr(s, "stats")}

    def collect(self) -> Iterator[CounterMetricFamily]:
        for field, help_text in (
            ("truncated", "Texts cut at the scorer's max_length."),
            ("oom_splits", "Batches halved after a CUDA out-of-memory error (none dropped)."),
        ):
            family = CounterMetricFamily(f"alignwatch_scorer_{field}", help_text, labels=["scorer"])
            for name, scorer in self._scorers.items():
                family.add_metric([name], getattr(scorer.stats, field))
            yield family
