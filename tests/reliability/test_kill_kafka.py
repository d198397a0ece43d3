"""100,000 records through the real broker with 10 SIGKILLs: 0 lost, 0 double-counted."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from tests.daemon_process import DaemonProcess, stored_records, window_counts
from tests.generate import make_records
from tests.monitor.test_kafka import PARTITIONS, START, _committed_all, _config, _topic

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
