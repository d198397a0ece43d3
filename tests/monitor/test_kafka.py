"""The daemon against a real Kafka broker: accounting, dead letters, offsets, crashes."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from tests.daemon_process import DaemonProcess, dead_letter_reasons, stored_records, window_counts
from tests.generate import make_records, malformed_lines

pytestmark = pytest.mark.kafka

START = 1_793_610_000_000
PARTITIONS = 3


def _topic(broker: Any, name: str, partitions: int = PARTITIONS) -> str:
    """Create the topic and wait until its metadata is served (CreateTopics returns first)."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    try:
        deadline = time.monotonic() + 30
        while len(consumer.partitions_for_topic(name) or ()) < partitions:
            assert time.monotonic() < deadline, f"topic {name} has no metadata after 30 s"
            time.sleep(0.1)
            consumer.topics()  # refreshes the metadata
    finally:
        consumer.close()
    return name


def _produce(broker: Any, topic: str, valid: int, malformed: int) -> Counter[str]:
    """Valid records plus malformed ones spread through them; returns expected reasons."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    expected: Counter[str] = Counter()
    bad = list(malformed_lines(malformed))
    every = max(valid // max(malformed, 1), 1)
    for index, record in enumerate(
        make_records(valid, start_ms=START, span_ms=valid * 600, prefix=topic)
    ):
        producer.send(topic, orjson.dumps(record), partition=index % PARTITIONS)
        if index % every == 0 and bad:
            raw, reason = bad.pop()
            producer.send(topic, raw, partition=index % PARTITIONS)
            expected[reason] += 1
    producer.flush()
    producer.close()
    return expected


def _config(write_config: Callable[..., Path], broker: Any, topic: str, **patch: Any) -> Path:
    return write_config(
        {
            "source": {
                "type": "kafka",
                "kafka": {
                    "bootstrap_servers": [broker.bootstrap_servers],
                    "topics": [topic],
                    "group_id": f"group-{topic}",
                    "lag_interval": "1s",
                    # A killed member's partitions move after this, not kafka-python's 45 s.
                    "client_options": {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000},
                },
            },
            **patch,
        }
    )


def _committed_all(broker: Any, topic: str) -> bool:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=f"group-{topic}")
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = consumer.end_offsets(partitions)
        return all(consumer.committed(tp) == ends[tp] for tp in partitions)
    finally:
        consumer.close()


def _read_topic(broker: Any, topic: str, expected: int) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        values: list[dict[str, Any]] = []
        for message in consumer:
            values.append(orjson.loads(message.value))
            if len(values) >= expected:
                break
        return values
    finally:
        consumer.close()


def test_every_record_counted_once_and_every_malformed_one_dead_lettered(
    kafka_broker: Any, write_config: Callable[..., Path], tmp_path: Path
):
    topic = _topic(kafka_broker, f"logs-{uuid.uuid4().hex[:8]}")
    expected_reasons = _produce(kafka_broker, topic, valid=4_950, malformed=50)
    assert sum(expected_reasons.values()) == 50 and len(expected_reasons) >= 5
    daemon = DaemonProcess(_config(write_config, kafka_broker, topic))
    db = tmp_path / "store.db"
    try:
        daemon.wait_for(
            lambda: _committed_all(kafka_broker, topic), 120, "offsets to cover the topic"
        )
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_tail()

    assert stored_records(db) == 4_950
    assert sum(window_counts(db).values()) == 4_950
    assert dead_letter_reasons(db) == dict(expected_reasons)
    envelopes = _read_topic(kafka_broker, f"{topic}.dlq", expected=50)
    assert Counter(e["reason"] for e in envelopes) == expected_reasons
    assert all(e["source"]["partition"].startswith(f"{topic}:") for e in envelopes)
    assert len({(e["source"]["partition"], e["source"]["offset"]) for e in envelopes}) == 50


def test_sigkill_mid_run_then_restart_matches_an_uninterrupted_run(
    kafka_broker: Any, write_config: Callable[..., Path], tmp_path: Path
):
    topic = _topic(kafka_broker, f"crash-{uuid.uuid4().hex[:8]}")
    _produce(kafka_broker, topic, valid=6_000, malformed=30)
    config = _config(write_config, kafka_broker, topic, batch={"max_size": 25, "max_wait": "20ms"})
    db = tmp_path / "store.db"
    first = DaemonProcess(config)
    try:
        first.wait_for(lambda: stored_records(db) >= 1_500, 120, "part of the topic")
    finally:
        first.kill()
    assert stored_records(db) < 6_000, "the kill must land mid-run"
    second = DaemonProcess(config)
    try:
        second.wait_for(lambda: _committed_all(kafka_broker, topic), 120, "the rest of the topic")
    finally:
        code = second.stop()
    assert code == 0, second.log_tail()

    uninterrupted = tmp_path / "uninterrupted.jsonl"
    uninterrupted.write_bytes(
        b"\n".join(
            orjson.dumps(r)
            for r in make_records(6_000, start_ms=START, span_ms=6_000 * 600, prefix=topic)
        )
    )
    reference = write_config(
        {
            "source": {"file": {"path": str(uninterrupted)}},
            "store": {"path": "reference.db"},
            "dead_letter": {"path": "ref-dead.jsonl"},
        },
        name="reference.yaml",
    )
    assert DaemonProcess(reference).wait(timeout=120) == 0
    expected = window_counts(tmp_path / "reference.db")
    assert sum(expected.values()) == 6_000
    assert window_counts(db) == expected
    assert sum(dead_letter_reasons(db).values()) == 30


def test_an_assigned_partition_starts_at_the_stored_position_not_the_group_commit(
    kafka_broker: Any,
):
    from monitor.config import KafkaSourceConfig
    from monitor.sources.kafka import KafkaSource

    topic = _topic(kafka_broker, f"seek-{uuid.uuid4().hex[:8]}")
    _produce(kafka_broker, topic, valid=90, malformed=0)
    asked: list[set[str]] = []

    def stored(partitions: set[str]) -> dict[str, int]:
        asked.append(set(partitions))
        return {f"{topic}:1": 7}  # partition 0 unknown to the store, 2 likewise

    source = KafkaSource(
        KafkaSourceConfig(
            bootstrap_servers=[kafka_broker.bootstrap_servers],
            topics=[topic],
            group_id=f"group-{topic}",
        ),
        stored,
    )
    try:
        first: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while len(first) < PARTITIONS and time.monotonic() < deadline:
            for message in source.poll(500, 0.5):
                first.setdefault(message.position.partition, message.position.offset)
    finally:
        source.close()
    assert asked == [{f"{topic}:{p}" for p in range(PARTITIONS)}]
    assert source.take_assigned() == set(asked[0])
    assert first == {f"{topic}:0": 0, f"{topic}:1": 7, f"{topic}:2": 0}
