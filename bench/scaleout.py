"""Records/s with 1, 2 and 3 workers in one consumer group sharing one PostgreSQL store.

    .venv/bin/python bench/scaleout.py [--records 60000] [--partitions 6] [--workers 1 2 3]

Starts a real Kafka broker and a real PostgreSQL (fsync on, as in production) once, writes
the records to a topic once, then for each worker count runs that many `alignwatch run`
processes (light scorers) in a fresh consumer group against a fresh database, and measures
side by side in one run:

- steady rate: records stored per second between 10% and 90% of the input (start-up and the
  last idle window excluded), read from the database;
- total: seconds from launching the workers until every record is stored.

A last row runs one worker on a SQLite store over the same topic: the single-worker default,
for what the shared store costs. A second table is the store alone: 1, 2 and 3 processes
calling ``write_batch`` with ready-made batches of 500 scored records (no Kafka, no
scoring), each on partitions of its own: the ceiling the store's write rate puts on
workers, on this machine.

The machine's core count is printed beside them: workers share its cores with the broker
and the database here, so the ratios are a floor for workers on hosts of their own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaAdminClient, KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

from tests.broker.kafka_broker import KafkaBroker  # noqa: E402
from tests.daemon_process import stored_records as sqlite_stored_records  # noqa: E402
from tests.generate import make_records  # noqa: E402
from tests.postgres_server import PostgresServer, stored_records  # noqa: E402

START_MS = 1_793_610_000_000


def _stored(url: str) -> int:
    """Records stored so far, in a PostgreSQL URL or a SQLite file path."""
    if url.startswith("postgresql://"):
        return stored_records(url)
    return sqlite_stored_records(Path(url))


def _config(folder: Path, broker: KafkaBroker, topic: str, url: str, workers: int) -> Path:
    """``url``: a PostgreSQL URL, or a SQLite file path."""
    store = {"type": "postgres", "url": url} if url.startswith("postgresql://") else {"path": url}
    document = {
        "source": {
            "type": "kafka",
            "kafka": {
                "bootstrap_servers": [broker.bootstrap_servers],
                "topics": [topic],
                "group_id": f"bench-{workers}-{uuid.uuid4().hex[:6]}",
                "client_options": {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000},
            },
        },
        "scorers": [{"type": "response_tokens"}, {"type": "refusal"}],
        "batch": {"max_size": 500, "max_wait": "50ms"},
        "windows": {"size": "5m", "allowed_lateness": "1m"},
        "store": store,
        "dead_letter": {"path": str(folder / "dead.jsonl")},
        "metrics": {"port": 0},
        "api": {"port": 0},
        "logging": {"level": "WARNING"},
    }
    path = folder / f"workers-{workers}-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _run(config: Path, url: str, workers: int, total: int) -> tuple[float, float]:
    """(steady records/s, total seconds) for ``workers`` processes reading ``total`` records."""
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "--config", str(config), "--quiet"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    marks: dict[float, tuple[float, int]] = {}
    try:
        while True:
            stored = _stored(url)
            now = time.monotonic()
            for fraction in (0.1, 0.9):
                if fraction not in marks and stored >= total * fraction:
                    marks[fraction] = (now, stored)
            if stored >= total:
                break
            if now - started > 1_800:
                raise RuntimeError(f"{workers} workers: only {stored} of {total} after 30 min")
            time.sleep(0.1)
        elapsed = time.monotonic() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    (t10, n10), (t90, n90) = marks[0.1], marks[0.9]
    return (n90 - n10) / (t90 - t10), elapsed


def _write_only(url: str, writer: int, batches: int) -> None:
    from monitor.records import Position, Record
    from monitor.store import BatchWrite, ScoredRecord
    from monitor.store.postgres import PostgresStore
    from monitor.windows import window_of

    scores = {"tokens": 12.0, "refusal": 0.0}

    partition = f"bench:{writer}"
    store = PostgresStore(url, lateness_ms=60_000, partial_after_ms=600_000)
    store.claim_partitions({partition})
    try:
        for batch in range(batches):
            scored = []
            for index in range(500):
                offset = batch * 500 + index
                ts_ms = START_MS + offset * 10
                position = Position(partition, offset)
                record = Record(f"{writer}-{offset}", ts_ms, "m", "p", "r", position)
                scored.append(ScoredRecord(record, window_of(ts_ms, 300_000), scores))
            store.write_batch(
                BatchWrite(scored, [], [], {partition: ts_ms}, {partition: offset + 1}, None)
            )
    finally:
        store.close()


def _store_rate(database: PostgresServer, writers: int, batches: int) -> float:
    """Records/s written by ``writers`` processes into one fresh database."""
    from monitor.store.postgres import PostgresStore

    url = database.new_database()
    PostgresStore(url, lateness_ms=0, partial_after_ms=1).close()  # the schema, untimed
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        pool.starmap(_write_only, [(url, writer, batches) for writer in range(writers)])
    return writers * batches * 500 / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--store-batches", type=int, default=100, help="per writer, 500 each")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        KafkaBroker() as broker,
        PostgresServer(fsync=True) as database,
    ):
        folder = Path(tmp)
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        admin.create_topics([NewTopic(topic, args.partitions, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=20)
        records = make_records(args.records, start_ms=START_MS, span_ms=args.records * 100)
        for index, record in enumerate(records):
            producer.send(topic, orjson.dumps(record), partition=index % args.partitions)
        producer.flush()
        producer.close()

        results: dict[str, tuple[float, float]] = {}
        for workers in args.workers:
            url = database.new_database()
            results[str(workers)] = _run(
                _config(folder, broker, topic, url, workers), url, workers, args.records
            )
        sqlite_path = str(folder / "single.db")
        results["1 (SQLite)"] = _run(
            _config(folder, broker, topic, sqlite_path, 1), sqlite_path, 1, args.records
        )
        store_only = {n: _store_rate(database, n, args.store_batches) for n in args.workers}
    base = results[str(args.workers[0])][0]
    print(
        f"{args.records:,} records, {args.partitions} partitions, light scorers, "
        f"PostgreSQL store (fsync on); {os.cpu_count()} cores shared by workers, "
        "broker and database"
    )
    print(f"{'workers':>10} {'steady rec/s':>13} {'vs first':>9} {'total s':>8}")
    for workers, (rate, elapsed) in results.items():
        print(f"{workers:>10} {rate:>13,.0f} {rate / base:>8.2f}x {elapsed:>8.1f}")
    print(f"store alone: write_batch of 500 records, {args.store_batches} batches per writer")
    print(f"{'writers':>10} {'records/s':>13} {'vs first':>9}")
    first = store_only[args.workers[0]]
    for writers, rate in store_only.items():
        print(f"{writers:>10} {rate:>13,.0f} {rate / first:>8.2f}x")


if __name__ == "__main__":
    main()
