"""Scoring slower than the input: memory stays bounded, lag shows, nothing is dropped."""

from __future__ import annotations

import contextlib
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from tests.daemon_process import DaemonProcess, stored_records
from tests.generate import make_records
from tests.monitor.test_kafka import PARTITIONS, START, _committed_all, _config, _topic
from tests.net import free_port

pytestmark = pytest.mark.kafka

RECORDS = 20_000
PAD = "x" * 5_000  # 20,000 records of ~5 KB: a 100 MB topic


def _lag(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("alignwatch_consumer_lag_records{")
    )


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def test_slow_scoring_keeps_memory_bounded_and_shows_lag(
    kafka_broker: Any, write_config: Callable[..., Path], tmp_path: Path
):
    topic = _topic(kafka_broker, f"slow-{uuid.uuid4().hex[:8]}")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=20)
    for index, record in enumerate(make_records(RECORDS, start_ms=START, span_ms=RECORDS * 50)):
        record["response"] += PAD
        producer.send(topic, orjson.dumps(record), partition=index % PARTITIONS)
    producer.flush()
    producer.close()
    port = free_port()
    config = _config(
        write_config,
        kafka_broker,
        topic,
        scorers=[{"type": "tests.fakes:SlowTokens", "options": {"seconds_per_batch": 0.02}}],
        batch={"max_size": 200, "max_wait": "10ms"},
        metrics={"port": port},
    )
    db = tmp_path / "store.db"
    daemon = DaemonProcess(config)
    lags: list[float] = []

    def progressed() -> bool:
        with contextlib.suppress(OSError):
            lags.append(_lag(port))
        return stored_records(db) >= RECORDS // 2

    try:
        daemon.wait_for(progressed, 180, "half the topic")
        daemon.wait_for(lambda: _committed_all(kafka_broker, topic), 300, "the whole topic")
        peak_kib = _peak_rss_kib(daemon.process.pid)
    finally:
        assert daemon.stop() == 0, daemon.log_tail()
    assert stored_records(db) == RECORDS
    assert max(lags) > 1_000, "consumer lag must be visible while scoring falls behind"
    # The topic is ~100 MB; the daemon holds a batch and kafka-python's bounded fetch buffer.
    assert peak_kib < 500_000, f"peak RSS {peak_kib} KiB"
    print(f"100 MB topic, slow scorer: peak RSS {peak_kib / 1024:.0f} MiB, max lag {max(lags):.0f}")
