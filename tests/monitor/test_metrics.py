from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics


def test_scorer_running_counters_are_read_at_scrape_time():
    registry = CollectorRegistry()
    stats = SimpleNamespace(truncated=0, oom_splits=0)
    Metrics(registry).watch_scorers({"tox": SimpleNamespace(stats=stats), "light": object()})
    stats.truncated, stats.oom_splits = 7, 2
    assert registry.get_sample_value("alignwatch_scorer_truncated_total", {"scorer": "tox"}) == 7
    assert registry.get_sample_value("alignwatch_scorer_oom_splits_total", {"scorer": "tox"}) == 2
    assert (
        registry.get_sample_value("alignwatch_scorer_truncated_total", {"scorer": "light"}) is None
    )


def test_lag_of_revoked_partitions_is_dropped():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.set_lag({"t:0": 5, "t:1": 7})
    metrics.set_lag({"t:1": 3})
    assert (
        registry.get_sample_value("alignwatch_consumer_lag_records", {"partition": "t:0"}) is None
    )
    assert registry.get_sample_value("alignwatch_consumer_lag_records", {"partition": "t:1"}) == 3
