"""Dead-letter sinks: every message that could not be counted, with its bytes and reason.

The envelope is the same JSON object everywhere, so one tool can read a file sink and a
topic sink alike. Delivery is at-least-once: a crash before the source commit re-sends.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from detectors.registry import resolve
from monitor.config import Config
from monitor.errors import AlignwatchError, Unavailable
from monitor.records import DeadLetter
from monitor.windows import iso


class DeadLetterSink(Protocol):
    def add(self, letters: Sequence[DeadLetter]) -> None: ...

    def flush(self) -> None:
        """Return only once everything added is durable; raise if it cannot be."""
        ...

    def close(self) -> None: ...


def envelope(letter: DeadLetter, now_ms: int) -> dict[str, Any]:
    return {
        "reason": letter.reason.value,
        "detail": letter.detail,
        "source": {"partition": letter.position.partition, "offset": letter.position.offset},
        "record_id": letter.record_id,
        "ts_ms": letter.ts_ms,
        "raw_base64": base64.b64encode(letter.raw).decode("ascii"),
        "dead_lettered_at": iso(now_ms),
    }


class FileDeadLetterSink:
    """Appends one envelope per line; ``flush`` fsyncs."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("ab")

    def add(self, letters: Sequence[DeadLetter]) -> None:
        now_ms = _now_ms()
        for letter in letters:
            self._file.write(orjson.dumps(envelope(letter, now_ms)) + b"\n")

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.flush()
        self._file.close()


class KafkaDeadLetterSink:
    """Produces envelopes to ``topic``, or to ``<source topic>.dlq`` when no topic is set."""

    def __init__(self, producer_options: dict[str, Any], topic: str | None):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            self._producer = KafkaProducer(**producer_options, acks="all")
        except KafkaError as exc:
            raise Unavailable(f"dead-letter topic: {exc}") from exc
        self._topic = topic
        self._pending: list[Any] = []

    def add(self, letters: Sequence[DeadLetter]) -> None:
        now_ms = _now_ms()
        for letter in letters:
            topic = self._topic or f"{letter.position.partition.rpartition(':')[0]}.dlq"
            self._pending.append(
                self._producer.send(
                    topic,
                    value=orjson.dumps(envelope(letter, now_ms)),
                    key=f"{letter.position.partition}@{letter.position.offset}".encode(),
                    headers=[("alignwatch-reason", letter.reason.value.encode())],
                )
            )

    def flush(self) -> None:
        from kafka.errors import KafkaError

        self._producer.flush()
        pending, self._pending = self._pending, []
        try:
            for future in pending:
                future.get(timeout=30)
        except KafkaError as exc:
            # The caller does not commit offsets, so these letters are produced again.
            raise AlignwatchError(f"dead-letter topic write failed: {exc}") from exc

    def close(self) -> None:
        self.flush()
        self._producer.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def file_sink(config: Config) -> DeadLetterSink:
    return FileDeadLetterSink(config.dead_letter.path)


def kafka_sink(config: Config) -> DeadLetterSink:
    from kafka import KafkaProducer

    kafka = config.source.kafka
    if kafka is None:
        raise AlignwatchError("dead_letter.type: 'kafka' needs source.kafka for its brokers")
    settings = kafka.client_settings()
    options = {k: v for k, v in settings.items() if k in KafkaProducer.DEFAULT_CONFIG}
    options["bootstrap_servers"] = kafka.bootstrap_servers
    return KafkaDeadLetterSink(options, config.dead_letter.topic)


DEAD_LETTER_SINKS: dict[str, str] = {
    "file": "monitor.sinks.dead_letter:file_sink",
    "kafka": "monitor.sinks.dead_letter:kafka_sink",
}


def open_dead_letter_sink(config: Config) -> DeadLetterSink:
    """``auto`` follows the source: a topic for Kafka, a JSON-lines file otherwise."""
    kind = config.dead_letter.type
    if kind == "auto":
        kind = "kafka" if config.source.type == "kafka" else "file"
    return resolve(DEAD_LETTER_SINKS, kind, "dead-letter sink")(config)
