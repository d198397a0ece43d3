"""Three workers, one consumer group, one PostgreSQL store, on the real broker and database:
30,000 records over 6 partitions; the lease holder is SIGKILLed mid-run and a fresh worker
joins later. Per-window counts, metrics, drift results and alerts equal a single worker's run
over the same input; every window is evaluated once; no alert is sent twice."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from monitor.alerting.payloads import DELIVERY_HEADER
from monitor.store.postgres import EVALUATION_LEASE
from monitor.store.sqlite import SQLiteStore
from tests.daemon_process import DaemonProcess
from tests.generate import make_records
from tests.monitor.test_kafka import START, _config, _topic
from tests.postgres_server import query, stored_records
from tests.receivers import Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

TOTAL = 30_000
PARTITIONS = 6
SECRET = "scale-out-secret"


def _common(receiver_url: str) -> dict[str, Any]:
    return {
        "scorers": [
            {
                "type": "tests.fakes:SlowTokens",
                "name": "tokens",
                "options": {"seconds_per_batch": 0.03},
            },
            {"type": "refusal"},
        ],
        "windows": {"size": "1m", "allowed_lateness": "5s", "idle_close_after": "3s"},
        "evaluation": {"interval": "200ms"},
        # The reference (first three windows) is built by whichever worker holds the lease.
        "drift": {
            "enabled": True,
            "reference": {"mode": "first_windows", "windows": 3},
            "tests": [{"type": "ks"}, {"type": "chi2"}],
        },
        "alerts": {
            "rules": [
                {
                    "name": "refusals_high",
                    "metric": "refusal_mean",
                    "op": ">",
                    "threshold": 0.05,
                    "severity": "warning",
                }
            ],
            "sinks": [
                {
                    "name": "hook",
                    "type": "webhook",
                    "url": receiver_url,
                    "secret_env": "HOOK_SECRET",
                }
            ],
            "delivery": {"poll_interval": "200ms"},
        },
    }


def _lease_holder(url: str) -> int | None:
    """The OS pid of the worker holding the evaluation lease (from its application_name)."""
    rows = query(
        url,
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s",
        (EVALUATION_LEASE >> 32, EVALUATION_LEASE & 0xFFFFFFFF),
    )
    match = re.fullmatch(r"alignwatch\[(\d+)\]", rows[0][0]) if rows else None
    return int(match.group(1)) if match else None


def _diagnosis(url: str, workers: list[DaemonProcess]) -> str:
    partitions = query(url, "SELECT name, next_offset, watermark_ms FROM partitions ORDER BY 1")
    windows = query(url, "SELECT status, COUNT(*) FROM windows GROUP BY 1")
    outbox = query(url, "SELECT status, COUNT(*) FROM outbox GROUP BY 1")
    logs = "\n".join(f"--- worker {w.process.pid}\n{w.log_tail(1500)}" for w in workers)
    return f"partitions {partitions}\nwindows {windows}\noutbox {outbox}\n{logs}"


def _evaluations(workers: list[DaemonProcess]) -> Counter[str]:
    """'window evaluated' log lines per window start, over every worker's whole log."""
    seen: Counter[str] = Counter()
    for worker in workers:
        for line in worker.log_path.read_bytes().splitlines():
            event = orjson.loads(line) if line.startswith(b"{") else {}
            if event.get("msg") == "window evaluated":
                seen[event["window_start"]] += 1
    return seen


def _single_worker_run(
    records: list[dict[str, Any]], write_config: Callable[..., Path], tmp_path: Path
) -> tuple[dict[int, dict[str, Any]], set[str]]:
    """The reference: the same records, scorers, windows and rules; one worker, SQLite.
    Returns each window's result and the ids of the notifications it queued."""
    reference_input = tmp_path / "reference.jsonl"
    reference_input.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    with Receiver().running() as reference_hook:
        reference_config = write_config(
            {
                **_common(reference_hook.url),
                "source": {"file": {"path": str(reference_input)}},
                "batch": {"max_size": 1000, "max_wait": "50ms"},
                "store": {"path": "reference.db"},
                "dead_letter": {"path": "reference-dead.jsonl"},
            },
            name="reference.yaml",
        )
        assert DaemonProcess(reference_config).wait(timeout=300) == 0
    reference = SQLiteStore(tmp_path / "reference.db")
    try:
        expected = {window.start_ms: result for window, result in reference.results()}
        return expected, {entry["id"] for entry in reference.outbox_entries(10_000)}
    finally:
        reference.close()


def test_three_workers_one_store_match_one_worker_through_a_kill_and_a_join(
    kafka_broker: Any,
    postgres_url: str,
    write_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    topic = _topic(kafka_broker, f"scale-{uuid.uuid4().hex[:8]}", PARTITIONS)
    records = list(make_records(TOTAL, start_ms=START, span_ms=TOTAL * 60, prefix=topic))
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=20)
    for index, record in enumerate(records):
        producer.send(topic, orjson.dumps(record), partition=index % PARTITIONS)
    producer.flush()
    producer.close()
    expected, expected_alerts = _single_worker_run(records, write_config, tmp_path)
    assert sum(r["metrics"]["count"] for r in expected.values()) == TOTAL
    assert len(expected) >= 25 and expected_alerts, "the input must span windows and alerts"
    assert sum(bool(r["drift"].get("tests")) for r in expected.values()) >= 25

    with Receiver().running() as hook:
        config = _config(
            write_config,
            kafka_broker,
            topic,
            **_common(hook.url),
            batch={"max_size": 100, "max_wait": "20ms"},
            store={"type": "postgres", "url": postgres_url},
            logging={"level": "INFO"},
        )
        workers = [DaemonProcess(config) for _ in range(3)]
        try:
            workers[0].wait_for(
                lambda: (
                    stored_records(postgres_url) >= 6_000
                    and _lease_holder(postgres_url) is not None
                ),
                120,
                "6,000 records and a lease holder",
            )
            leader = _lease_holder(postgres_url)
            killed = next(w for w in workers if w.process.pid == leader)
            killed.kill()
            survivor = next(w for w in workers if w is not killed)
            survivor.wait_for(lambda: stored_records(postgres_url) >= 15_000, 120, "15,000 records")
            workers.append(DaemonProcess(config))

            def finished() -> bool:
                windows = query(postgres_url, "SELECT status, COUNT(*) FROM windows GROUP BY 1")
                pending = query(
                    postgres_url, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
                )
                return (
                    dict(windows) == {"evaluated": len(expected)}
                    and pending == [(0,)]
                    and len(hook.received) >= len(expected_alerts)
                )

            try:
                workers[-1].wait_for(finished, 240, "every window evaluated and every alert sent")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{_diagnosis(postgres_url, workers)}") from None
        finally:
            codes = [w.stop() for w in workers if w.process.poll() is None]
        assert codes == [0, 0, 0], "the surviving and the fresh workers stop cleanly"

    stored = {
        start: orjson.loads(result)
        for start, result in query(postgres_url, "SELECT start_ms, result FROM windows")
    }
    assert sorted(stored) == sorted(expected)
    for start, result in stored.items():
        assert result["metrics"] == expected[start]["metrics"], f"window {start}"
        assert result["alerts"] == expected[start]["alerts"], f"window {start}"
        assert result["drift"] == expected[start]["drift"], f"window {start}"
        assert result["missing_partitions"] == []
    assert stored_records(postgres_url) == TOTAL

    evaluations = _evaluations(workers)
    assert sum(evaluations.values()) == len(expected)
    assert set(evaluations.values()) == {1}, "a window was evaluated twice"
    sent = Counter(request.headers[DELIVERY_HEADER] for request in hook.received)
    assert set(sent) == expected_alerts
    assert set(sent.values()) == {1}, "an alert was sent twice"
    assert all(request.signed_with(SECRET) for request in hook.received)
