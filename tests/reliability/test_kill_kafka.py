"""On the real broker: 100,000 records with 10 SIGKILLs lose and double-count nothing;
SIGTERM mid-batch drains, commits and exits 0."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.daemon_process import DaemonProcess, stored_records, window_counts
from tests.generate import make_records
from tests.monitor.test_kafka import (
    PARTITIONS,
    START,
    _committed_all,
    _config,
    _produce,
    _topic,
)

pytestmark = pytest.mark.kafka

TOTAL = 100_000
KILLS = 10


def test_ten_sigkills_lose_and_double_count_nothing(
    kafka_broker: Any, write_config: Callable[..., Path], tmp_path: Path
):
    topic = _topic(kafka_broker, f"kill-{uuid.uuid4().hex[:8]}")
    records = list(make_records(TOTAL, start_ms=START, span_ms=TOTAL * 60, prefix=topic))
    producer = KafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap_servers, acks="all", linger_ms=20
    )
    for index, record in enumerate(records):
        producer.send(topic, orjson.dumps(record), partition=index % PARTITIONS)
    producer.flush()
    producer.close()

    config = _config(write_config, kafka_broker, topic, batch={"max_size": 500, "max_wait": "20ms"})
    db = tmp_path / "store.db"
    rng = random.Random(11)
    marks = sorted(rng.sample(range(2_000, TOTAL - 2_000, 500), KILLS))
    started = time.monotonic()
    for mark in marks:
        daemon = DaemonProcess(config)
        try:
            daemon.wait_for(lambda m=mark: stored_records(db) >= m, 180, f"{mark} records")
        finally:
            daemon.kill()
    last = DaemonProcess(config)
    try:
        last.wait_for(lambda: _committed_all(kafka_broker, topic), 300, "the whole topic")
    finally:
        assert last.stop() == 0, last.log_tail()
    elapsed = time.monotonic() - started

    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    reference_config = write_config(
        {
            "source": {"file": {"path": str(reference)}},
            "store": {"path": "reference.db"},
            "dead_letter": {"path": "reference-dead.jsonl"},
        },
        name="reference.yaml",
    )
    assert DaemonProcess(reference_config).wait(timeout=600) == 0
    expected = window_counts(tmp_path / "reference.db")
    assert sum(expected.values()) == TOTAL
    assert window_counts(db) == expected, "lost or double-counted records"
    print(f"100k records, {KILLS} SIGKILLs: {elapsed:.0f}s")


def _committed_total(broker: Any, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=f"group-{topic}")
    try:
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))
    finally:
        consumer.close()


def test_sigterm_mid_batch_drains_commits_and_exits_zero(
    kafka_broker: Any, write_config: Callable[..., Path], tmp_path: Path
):
    topic = _topic(kafka_broker, f"term-{uuid.uuid4().hex[:8]}")
    _produce(kafka_broker, topic, valid=3_000, malformed=0)
    # Scoring takes 0.5 s a batch, so a signal almost always lands while one is scored.
    config = _config(
        write_config,
        kafka_broker,
        topic,
        scorers=[{"type": "tests.fakes:SlowTokens", "options": {"seconds_per_batch": 0.5}}],
        batch={"max_size": 100, "max_wait": "10ms"},
    )
    db = tmp_path / "store.db"
    daemon = DaemonProcess(config)
    daemon.wait_for(lambda: stored_records(db) >= 300, 120, "a few batches")
    assert daemon.stop(timeout=20) == 0, daemon.log_tail()
    drained = stored_records(db)
    assert 300 <= drained < 3_000, "the signal must land mid-run"
    assert _committed_total(kafka_broker, topic) == drained, "drained batch not committed"

    restarted = DaemonProcess(config)
    try:
        restarted.wait_for(lambda: _committed_all(kafka_broker, topic), 180, "the rest")
    finally:
        assert restarted.stop() == 0, restarted.log_tail()
    assert stored_records(db) == 3_000
    assert sum(window_counts(db).values()) == 3_000
