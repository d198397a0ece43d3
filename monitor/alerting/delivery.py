"""Delivers the outbox: every queued notification is retried with exponential backoff and
jitter until a 2xx or ``give_up_after``; receivers may see a duplicate, never a gap."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

import httpx
import orjson

from monitor.alerting.payloads import render
from monitor.config import DeliveryConfig, SinkConfig
from monitor.errors import AlignwatchError
from monitor.metrics import Metrics
from monitor.store import OutboxItem, Store

log = logging.getLogger(__name__)

_BATCH = 100


class Deliverer:
    def __init__(
        self,
        store: Store,
        sinks: Sequence[SinkConfig],
        config: DeliveryConfig,
        metrics: Metrics,
        *,
        seed: int | None = None,
    ):
        self._store = store
        self._sinks = {sink.name: sink for sink in sinks}
        self._config = config
        self._metrics = metrics
        self._rng = random.Random(seed)
        self._client = httpx.Client(follow_redirects=False)
        woken = store.outbox_wake()
        if woken:
            log.info("resending notifications left pending", extra={"pending": woken})

    def deliver_due(self) -> int:
        """Try every item that is due now; returns how many were attempted."""
        items = self._store.due_outbox(_now_ms(), _BATCH)
        for item in items:
            self._attempt(item)
        self._metrics.outbox_pending.set(self._store.outbox_counts()["pending"])
        return len(items)

    def drain(self, timeout: float) -> bool:
        """Deliver until nothing is pending (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            self.deliver_due()
            if self._store.outbox_counts()["pending"] == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(self._config.poll_interval, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        self._client.close()

    def _attempt(self, item: OutboxItem) -> None:
        sink = self._sinks.get(item.sink)
        if sink is None:
            self._settle_failed(item, "sink is no longer configured")
            return
        error = self._send(sink, item)
        if error is None:
            self._store.outbox_settle(item, "sent")
            self._metrics.deliveries.labels(sink=sink.name, outcome="sent").inc()
            return
        now = _now_ms()
        if now - item.created_ms >= self._config.give_up_after * 1000:
            self._settle_failed(item, error)
            return
        backoff = min(self._config.max_backoff, self._config.initial_backoff * 2**item.attempts)
        delay_ms = int(backoff * self._rng.uniform(0.5, 1.0) * 1000)
        self._store.outbox_settle(item, "pending", next_attempt_ms=now + delay_ms, error=error)
        log.warning(
            "delivery failed; will retry",
            extra={"sink": sink.name, "id": item.id, "error": error, "retry_in_ms": delay_ms},
        )

    def _send(self, sink: SinkConfig, item: OutboxItem) -> str | None:
        """None on a 2xx, else why not; the sink's URL (it may hold a token) is masked."""
        try:
            request = render(sink, item.id, orjson.loads(item.payload))
            response = self._client.post(
                request.url, content=request.body, headers=request.headers, timeout=sink.timeout
            )
        except (httpx.HTTPError, AlignwatchError) as exc:
            return f"{type(exc).__name__}: {exc}".replace(sink.url, "<sink url>")[:300]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def _settle_failed(self, item: OutboxItem, error: str) -> None:
        self._store.outbox_settle(item, "failed", error=error)
        self._metrics.deliveries.labels(sink=item.sink, outcome="failed").inc()
        log.error("delivery given up", extra={"sink": item.sink, "id": item.id, "error": error})


def _now_ms() -> int:
    return int(time.time() * 1000)
