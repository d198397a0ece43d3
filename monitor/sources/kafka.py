"""Kafka source: one member of a consumer group, committing only what the store holds.

Offsets are committed by hand (``enable_auto_commit`` is forced off) after each batch is
durable; a crash in between re-delivers records, which the store counts as duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from monitor.config import Config, KafkaSourceConfig
from monitor.errors import ConfigError, Unavailable
from monitor.records import Position, RawMessage
from monitor.sources.base import StoredPositions

log = logging.getLogger(__name__)

_HEALTH_TIMEOUT_MS = 5_000

# Options the daemon owns: setting them through client_options would break its guarantees.
_RESERVED = frozenset(
    {
        "bootstrap_servers",
        "group_id",
        "enable_auto_commit",
        "auto_offset_reset",
        "key_deserializer",
        "value_deserializer",
    }
)


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def split_key(key: str) -> tuple[str, int]:
    topic, _, partition = key.rpartition(":")
    return topic, int(partition)


def consumer_options(config: KafkaSourceConfig) -> dict[str, Any]:
    """Validated keyword arguments for ``KafkaConsumer``."""
    from kafka import KafkaConsumer

    for field in ("client_options", "client_options_env"):
        for key in getattr(config, field):
            if key in _RESERVED:
                raise ConfigError(
                    f"source.kafka.{field}.{key}: set by alignwatch itself; "
                    "use the matching source.kafka key instead, if there is one"
                )
            if key not in KafkaConsumer.DEFAULT_CONFIG:
                raise ConfigError(f"source.kafka.{field}.{key}: not a kafka-python option")
    return {
        # New partitions, and topics whose metadata was missing at the first join, are
        # noticed within this (kafka-python's default is 5 minutes).
        "metadata_max_age_ms": 30_000,
        **config.client_settings(),
        "bootstrap_servers": config.bootstrap_servers,
        "group_id": config.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": config.auto_offset_reset,
    }


class KafkaSource:
    def __init__(self, config: KafkaSourceConfig, stored_positions: StoredPositions):
        from kafka import ConsumerRebalanceListener, KafkaConsumer
        from kafka.errors import KafkaError

        self._config = config
        options = consumer_options(config)
        try:
            self._consumer = KafkaConsumer(**options)
        except KafkaError as exc:
            raise Unavailable(f"Kafka source: {exc}") from exc
        self._revoked: set[str] = set()
        self._assigned: set[str] = set()
        source = self

        class _Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                keys = {partition_key(tp.topic, tp.partition) for tp in revoked}
                source._revoked |= keys
                log.info("partitions revoked", extra={"partitions": sorted(keys)})

            def on_partitions_assigned(self, assigned: Any) -> None:
                keys = {partition_key(tp.topic, tp.partition) for tp in assigned}
                source._seek_to_stored(keys, stored_positions)
                source._assigned |= keys
                log.info("partitions assigned", extra={"partitions": sorted(keys)})

        for topic in config.topics:
            # Fetch each topic's metadata before joining: a group leader that joins without
            # it assigns nothing and may wait up to metadata_max_age_ms to notice.
            if not self._consumer.partitions_for_topic(topic):
                log.warning("topic has no partitions yet; waiting for it", extra={"topic": topic})
        self._consumer.subscribe(topics=list(config.topics), listener=_Listener())
        self._lag: dict[str, int] = {}
        self._lag_checked = 0.0
        self._healthy = True

    def _seek_to_stored(self, keys: set[str], stored_positions: StoredPositions) -> None:
        """Start where the store's data ends, not at the group's commit: the commit trails
        the store (it follows each write), so a partition that changes hands is read on from
        exactly what its previous owner stored."""
        from kafka import TopicPartition

        try:
            positions = stored_positions(keys)
        except Exception as exc:
            # kafka-python swallows listener errors; the committed offsets still bound any
            # re-reading, and the store counts re-read records as duplicates.
            log.error(
                "cannot read stored positions; starting at committed offsets",
                extra={"error": str(exc)},
            )
            return
        for key, offset in positions.items():
            self._consumer.seek(TopicPartition(*split_key(key)), offset)

    def poll(self, max_records: int, timeout: float) -> list[RawMessage]:
        started = time.monotonic()
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        self._keep_join_pending()
        if not batches and not self._consumer.assignment():
            # Without partitions poll() returns at once; waiting out the timeout keeps an
            # unassigned member (more members than partitions, say) from spinning a core.
            time.sleep(max(0.0, timeout - (time.monotonic() - started)))
        return [
            RawMessage(
                message.value if message.value is not None else b"",
                Position(partition_key(tp.topic, tp.partition), message.offset),
                message.offset + 1,
            )
            for tp, messages in batches.items()
            for message in messages
        ]

    def _keep_join_pending(self) -> None:
        """Work around a kafka-python 3.0.12 hang (the Java client's KAFKA-9815).

        A rejoin triggered by a metadata change is not flagged in ``rejoin_needed``; the
        group leader's own assignment then makes the snapshots agree again, so a poll()
        that times out between JoinGroup and SyncGroup leaves a join nobody finishes and
        the member never takes its partitions. Flagging the join in flight makes the next
        poll() await it, which is what the flag means.
        """
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is not None and getattr(coordinator, "_join_task", None) is not None:
            coordinator.request_rejoin()

    def commit(self, positions: Mapping[str, int]) -> None:
        from kafka import OffsetAndMetadata, TopicPartition
        from kafka.errors import CommitFailedError, KafkaError

        if not positions:
            return
        offsets = {
            TopicPartition(*split_key(key)): OffsetAndMetadata(offset, "", -1)
            for key, offset in positions.items()
        }
        try:
            # Bounded: kafka-python's default waits for a coordinator forever.
            self._consumer.commit(offsets, timeout_ms=_HEALTH_TIMEOUT_MS)
        except CommitFailedError as exc:
            # A rebalance took the partitions; their next owner re-reads from the last commit.
            log.warning("offset commit refused after a rebalance", extra={"error": str(exc)})
        except KafkaError as exc:
            self._set_health(exc)
            # The broker is unreachable. The store already holds the batch, and the next
            # batch commits these positions again; a restart before that re-reads, and the
            # store counts the re-read records as duplicates.
            log.warning("offset commit failed; will commit again", extra={"error": repr(exc)})
        else:
            self._set_health(None)

    @property
    def exhausted(self) -> bool:
        return False

    def take_assigned(self) -> set[str]:
        assigned, self._assigned = self._assigned, set()
        return assigned

    def take_revoked(self) -> set[str]:
        revoked, self._revoked = self._revoked, set()
        return revoked

    def healthy(self) -> bool:
        return self._healthy

    def lag(self) -> dict[str, int]:
        """Records behind the log end per partition, refreshed at most every lag_interval.

        The refresh doubles as the broker health check behind readiness.
        """
        from kafka.errors import KafkaError

        now = time.monotonic()
        if now - self._lag_checked < self._config.lag_interval:
            return self._lag
        self._lag_checked = now
        assigned = list(self._consumer.assignment())
        if not assigned:
            return self._lag
        try:
            ends = self._consumer.end_offsets(assigned, timeout_ms=_HEALTH_TIMEOUT_MS)
            self._lag = {
                partition_key(tp.topic, tp.partition): max(
                    0, ends[tp] - self._consumer.position(tp, timeout_ms=_HEALTH_TIMEOUT_MS)
                )
                for tp in assigned
            }
        except KafkaError as exc:
            self._set_health(exc)
        else:
            self._set_health(None)
        return self._lag

    def _set_health(self, error: Exception | None) -> None:
        """Log only the changes: an outage is one error line, not one per batch."""
        if error is not None and self._healthy:
            log.error("Kafka unreachable", extra={"error": repr(error)})
        elif error is None and not self._healthy:
            log.info("Kafka reachable again")
        self._healthy = error is None

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def from_config(config: Config, stored_positions: StoredPositions) -> KafkaSource:
    assert config.source.kafka is not None  # guaranteed by SourceConfig's validator
    return KafkaSource(config.source.kafka, stored_positions)
