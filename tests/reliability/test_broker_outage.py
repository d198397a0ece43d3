"""The broker stops for 30 s mid-run: readiness reports it, the daemon reconnects, and
every record is counted once. A broker that is down when the daemon starts is waited for."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon_process import DaemonProcess, stored_records, window_counts
from tests.monitor.test_kafka import _committed_all, _config, _produce, _topic
from tests.net import free_port, http_status

pytestmark = pytest.mark.kafka

OUTAGE_S = 30


def test_broker_outage_is_reported_and_survived(
    kafka_broker: Any,
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", "t")
    port = free_port()
    ready = f"http://127.0.0.1:{port}/readyz"
    topic = _topic(kafka_broker, f"outage-{uuid.uuid4().hex[:8]}")
    _produce(kafka_broker, topic, valid=6_000, malformed=0)
    config = _config(
        write_config,
        kafka_broker,
        topic,
        batch={"max_size": 10, "max_wait": "10ms"},
        api={"port": port},
    )
    db = tmp_path / "store.db"
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(lambda: stored_records(db) >= 1_000, 120, "part of the topic")
        kafka_broker.stop_process()
        down_at = time.monotonic()
        daemon.wait_for(lambda: http_status(ready) == 503, 25, "readiness to report the outage")
        reported_after = time.monotonic() - down_at
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert http_status(ready) == 503
        kafka_broker.start_process()
        up_at = time.monotonic()
        daemon.wait_for(
            lambda: _committed_all(kafka_broker, topic), 180, "the rest after the outage"
        )
        daemon.wait_for(lambda: http_status(ready) == 200, 30, "readiness to recover")
        recovered_after = time.monotonic() - up_at
    finally:
        if not kafka_broker.is_running:
            kafka_broker.start_process()
        code = daemon.stop()
    assert code == 0, daemon.log_tail()
    assert sum(window_counts(db).values()) == 6_000
    assert stored_records(db) == 6_000
    print(f"outage reported after {reported_after:.1f} s; caught up {recovered_after:.1f} s after")


def _down_at_start(
    kafka_broker: Any, write_config: Callable[..., Path], records: int
) -> tuple[DaemonProcess, str, str, Path]:
    """A daemon started while the broker is stopped; its attempts to connect fail fast."""
    port = free_port()
    topic = _topic(kafka_broker, f"down-{uuid.uuid4().hex[:8]}")
    _produce(kafka_broker, topic, valid=records, malformed=0)
    config = _config(write_config, kafka_broker, topic, api={"port": port})
    document = yaml.safe_load(config.read_text())
    document["source"]["kafka"]["client_options"]["bootstrap_timeout_ms"] = 2_000
    config.write_text(yaml.safe_dump(document))
    kafka_broker.stop_process()
    daemon = DaemonProcess(config)
    daemon.wait_for(
        lambda: "connecting the dead-letter sink failed; retrying" in daemon.log_tail(),
        60,
        "a failed attempt to connect",
    )
    assert http_status(f"http://127.0.0.1:{port}/healthz") == 200
    assert http_status(f"http://127.0.0.1:{port}/readyz") == 503
    return daemon, topic, f"http://127.0.0.1:{port}/readyz", config.with_name("store.db")


def test_broker_down_at_start_is_waited_for(
    kafka_broker: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", "t")
    try:
        daemon, topic, ready, db = _down_at_start(kafka_broker, write_config, 2_000)
        kafka_broker.start_process()
        daemon.wait_for(lambda: _committed_all(kafka_broker, topic), 120, "the topic")
        daemon.wait_for(lambda: http_status(ready) == 200, 30, "readiness")
    finally:
        if not kafka_broker.is_running:
            kafka_broker.start_process()
    assert daemon.stop() == 0, daemon.log_tail()
    assert stored_records(db) == 2_000


def test_sigterm_while_waiting_for_the_broker_exits_zero(
    kafka_broker: Any,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", "t")
    try:
        daemon, _, _, db = _down_at_start(kafka_broker, write_config, 10)
        assert daemon.stop(timeout=20) == 0, daemon.log_tail()
    finally:
        kafka_broker.start_process()
    assert "stopped while waiting for Kafka" in daemon.log_tail()
    assert stored_records(db) == 0
