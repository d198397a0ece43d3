"""What only a shared store does, on a real PostgreSQL: windows close on every partition's
watermark (or partially, naming the missing ones), lateness is the store's call, positions
never move back, one lease holder, one saved result per window."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from monitor.errors import AlreadyEvaluated, StoreError
from monitor.evaluation import Evaluator
from monitor.metrics import Metrics
from monitor.records import DeadLetterReason, Position, Record
from monitor.store import BatchWrite, OutboxItem, ScoredRecord
from monitor.store.postgres import PostgresStore
from monitor.windows import Window, window_of

pytestmark = pytest.mark.postgres

SIZE = 60_000
LATENESS = 1_000


def _scored(record_id: str, ts_ms: int, partition: str, offset: int) -> ScoredRecord:
    record = Record(record_id, ts_ms, "m", "p", "r", Position(partition, offset), {})
    return ScoredRecord(record, window_of(ts_ms, SIZE), {"s": 1.0}, raw=record_id.encode())


def _batch(*scored: ScoredRecord, late: tuple[ScoredRecord, ...] = ()) -> BatchWrite:
    """What a worker writes: its partitions' newest event times and next offsets."""
    watermark: dict[str, int] = {}
    positions: dict[str, int] = {}
    for item in (*scored, *late):
        partition = item.record.position.partition
        watermark[partition] = max(watermark.get(partition, 0), item.record.ts_ms)
        positions[partition] = max(positions.get(partition, 0), item.record.position.offset + 1)
    return BatchWrite(list(scored), list(late), [], watermark, positions, None)


@pytest.fixture
def url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture
def stores(url: str) -> Iterator[list[PostgresStore]]:
    """Two workers' stores on one database."""
    opened = [PostgresStore(url, lateness_ms=LATENESS, partial_after_ms=60_000) for _ in range(2)]
    yield opened
    for store in opened:
        store.close()


def test_a_window_closes_only_when_every_registered_partition_has_passed_it(
    stores: list[PostgresStore],
):
    a, b = stores
    a.claim_partitions({"t:0"})
    b.claim_partitions({"t:1"})
    a.write_batch(_batch(_scored("x", 1_000, "t:0", 0), _scored("y", SIZE + 5_000, "t:0", 1)))
    assert a.pending_windows() == [], "t:1 has no watermark yet: it holds the window back"
    b.write_batch(_batch(_scored("z", SIZE + LATENESS - 1, "t:1", 0)))
    assert a.pending_windows() == [], "t:1 is not past the end plus the lateness yet"
    b.write_batch(_batch(_scored("w", SIZE + LATENESS, "t:1", 1)))
    assert a.pending_windows() == [Window(0, SIZE)]
    contents = b.window_contents(Window(0, SIZE))
    assert contents.count == 1
    assert contents.missing_partitions == ()


def test_a_stalled_window_closes_partially_naming_the_missing_partitions(url: str):
    store = PostgresStore(url, lateness_ms=0, partial_after_ms=0)
    try:
        store.claim_partitions({"t:0", "t:1", "t:2"})
        store.write_batch(_batch(_scored("x", 1_000, "t:0", 0), _scored("y", SIZE, "t:0", 1)))
        store.write_batch(_batch(_scored("z", 2 * SIZE, "t:1", 0)))
        assert store.pending_windows() == [Window(0, SIZE), Window(SIZE, 2 * SIZE)]
        contents = store.window_contents(Window(0, SIZE))
        assert contents.missing_partitions == ("t:2",)
        assert contents.count == 1
        later = store.window_contents(Window(SIZE, 2 * SIZE))
        assert later.missing_partitions == ("t:0", "t:2")
        registry = CollectorRegistry()
        Evaluator(store, Metrics(registry), [0.5]).evaluate_pending()
        results = {window.start_ms: result for window, result in store.results()}
        assert results[0]["missing_partitions"] == ["t:2"]
        assert results[SIZE]["missing_partitions"] == ["t:0", "t:2"]
        assert registry.get_sample_value("alignwatch_windows_partial_total") == 2
        # A record of the closed window that arrives afterwards is late, never counted.
        outcome = store.write_batch(_batch(_scored("v", 2_000, "t:2", 0)))
        assert outcome.accepted == 0
        assert [letter.reason for letter in outcome.late] == [DeadLetterReason.LATE]
        assert outcome.late[0].raw == b"v"
    finally:
        store.close()


def test_the_store_not_the_worker_decides_what_is_late(stores: list[PostgresStore]):
    a, _ = stores
    a.claim_partitions({"t:0", "t:1"})
    a.write_batch(_batch(_scored("x", 1_000, "t:0", 0), _scored("y", 1_000, "t:1", 0)))
    # The worker thought the window closed (its own partitions ran ahead); it is open here.
    outcome = a.write_batch(_batch(late=(_scored("z", 2_000, "t:1", 1),)))
    assert (outcome.accepted, outcome.late) == (1, ())


def test_positions_and_watermarks_never_move_back(stores: list[PostgresStore]):
    a, b = stores
    a.claim_partitions({"t:0"})
    a.write_batch(_batch(_scored("x", 5_000, "t:0", 41)))
    # A worker that lost t:0 and has not noticed writes an older state: it is ignored.
    b.write_batch(_batch(_scored("y", 1_000, "t:0", 9)))
    claimed = b.claim_partitions({"t:0", "t:9"})
    assert claimed.positions == {"t:0": 42}
    assert claimed.watermark == {"t:0": 5_000}
    assert claimed.partitions == frozenset({"t:0", "t:9"})


def test_one_lease_holder_and_the_lease_moves_when_it_goes(url: str):
    first = PostgresStore(url, lateness_ms=0, partial_after_ms=1)
    second = PostgresStore(url, lateness_ms=0, partial_after_ms=1)
    third = PostgresStore(url, lateness_ms=0, partial_after_ms=1)
    try:
        assert first.evaluation_lease() is True
        assert second.evaluation_lease() is False
        assert first.evaluation_lease() is True, "the holder keeps it"
        first.close()  # a clean stop hands the lease back
        assert second.evaluation_lease() is True
        assert third.evaluation_lease() is False
        # A holder that dies: its connection goes without a word; the server frees the lock
        # once it notices (a moment on loopback).
        assert second._lease_db is not None
        backend = second._lease_db.info.backend_pid
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        deadline = time.monotonic() + 10
        while not third.evaluation_lease():
            assert time.monotonic() < deadline, "the lease never moved"
            time.sleep(0.05)
        assert second.evaluation_lease() is False, "the lost holder knows it lost the lease"
    finally:
        second.close()
        third.close()


def test_a_window_result_and_its_notifications_are_saved_once(stores: list[PostgresStore]):
    a, b = stores
    a.claim_partitions({"t:0"})
    a.write_batch(_batch(_scored("x", 1_000, "t:0", 0), _scored("y", 2 * SIZE, "t:0", 1)))
    assert a.pending_windows() == [Window(0, SIZE)]
    item = OutboxItem("alert:r:0:firing", "pager", b"{}", 1)
    a.save_result(Window(0, SIZE), {"metrics": {"count": 1}}, outbox=[item])
    with pytest.raises(AlreadyEvaluated):
        b.save_result(
            Window(0, SIZE),
            {"metrics": {"count": 99}},
            rule_states={"r": {"firing": True}},
            outbox=[OutboxItem("alert:r:0:other", "pager", b"{}", 1)],
        )
    assert b.results() == [(Window(0, SIZE), {"metrics": {"count": 1}})]
    assert [entry["id"] for entry in b.outbox_entries(10)] == ["alert:r:0:firing"]
    assert b.rule_states() == {}, "the refused save wrote nothing"


def test_a_database_restart_fails_one_write_then_the_store_reconnects():
    from tests.postgres_server import PostgresServer

    with PostgresServer() as server:
        store = PostgresStore(server.new_database(), lateness_ms=0, partial_after_ms=60_000)
        try:
            store.claim_partitions({"t:0"})
            store.write_batch(_batch(_scored("a", 1_000, "t:0", 0)))
            server.restart()
            with pytest.raises(StoreError):
                store.write_batch(_batch(_scored("b", 2_000, "t:0", 1)))
            # The daemon retries the same batch: nothing of the failed attempt was kept.
            outcome = store.write_batch(_batch(_scored("b", 2_000, "t:0", 1)))
            assert (outcome.accepted, outcome.duplicates) == (1, 0)
            assert store.claim_partitions({"t:0"}).positions == {"t:0": 2}
            assert store.evaluation_lease() is True
        finally:
            store.close()
