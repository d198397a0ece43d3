"""The store contract, on SQLite and on a real PostgreSQL where both must agree."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.errors import StoreError
from monitor.records import DeadLetter, DeadLetterReason, Position, Record
from monitor.store import BatchWrite, ScoredRecord, Store
from monitor.store.sql import sample_key
from monitor.store.sqlite import SQLiteStore
from monitor.windows import Window, window_of

SIZE = 300_000


def _scored(record_id: str, ts_ms: int, offset: int) -> ScoredRecord:
    record = Record(record_id, ts_ms, "m", "p", "r", Position("f", offset), {"segment": "a"})
    return ScoredRecord(record, window_of(ts_ms, SIZE), {"score": float(offset)}, raw=b"raw")


def _write(store: Store, on_time=(), *, late=(), letters=(), close=None, positions=None):
    return store.write_batch(
        BatchWrite(
            on_time=list(on_time),
            late_candidates=list(late),
            dead_letters=list(letters),
            watermark={"f": 1},
            positions=positions or {"f": 10},
            close_through_ms=close,
        )
    )


def _close_through(store: Store, through_ms: int) -> None:
    """Close windows ending by ``through_ms`` the way each store does: SQLite when a batch
    says so, PostgreSQL from the partitions' watermarks when the lease holder looks."""
    store.write_batch(BatchWrite([], [], [], {"f": through_ms}, {}, through_ms))
    store.pending_windows()


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """``make_store(name)`` opens store ``name`` (again, if it was opened before)."""
    urls: dict[str, str] = {}
    opened: list[Store] = []

    def make(name: str = "s", **options: Any) -> Store:
        store: Store
        if request.param == "sqlite":
            store = SQLiteStore(tmp_path / f"{name}.db", **options)
        else:
            from monitor.store.postgres import PostgresStore

            server = request.getfixturevalue("postgres_server")
            url = urls.setdefault(name, server.new_database())
            store = PostgresStore(url, lateness_ms=0, partial_after_ms=60_000, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_redelivered_records_are_duplicates_not_second_counts(make_store: Callable[..., Store]):
    store = make_store()
    first = _write(store, [_scored("a", 1_000, 0), _scored("b", 2_000, 1)])
    again = _write(store, [_scored("a", 1_000, 0), _scored("c", 3_000, 2)])
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (again.accepted, again.duplicates) == (1, 1)
    store.close_all_open()
    contents = store.window_contents(Window(0, SIZE))
    assert contents.count == 3
    assert sorted(contents.scores["score"].tolist()) == [0.0, 1.0, 2.0]


def test_same_id_in_two_windows_counts_in_each(make_store: Callable[..., Store]):
    store = make_store()
    outcome = _write(store, [_scored("a", 1_000, 0), _scored("a", SIZE + 1, 1)])
    assert outcome.accepted == 2


def test_late_candidate_is_duplicate_when_already_stored_else_late(
    make_store: Callable[..., Store],
):
    store = make_store()
    _write(store, [_scored("a", 1_000, 0)])
    _close_through(store, SIZE)
    outcome = _write(store, late=[_scored("a", 1_000, 0), _scored("z", 1_500, 5)])
    assert outcome.duplicates == 1
    assert [letter.record_id for letter in outcome.late] == ["z"]
    assert outcome.late[0].reason is DeadLetterReason.LATE
    assert store.window_contents(Window(0, SIZE)).late_count == 1


def test_state_positions_and_closing_are_persisted(make_store: Callable[..., Store]):
    store = make_store()
    _write(store, [_scored("a", 1_000, 0), _scored("b", SIZE + 5, 1)], positions={"f": 99})
    _close_through(store, SIZE)
    store.close()
    reopened = make_store()
    claimed = reopened.claim_partitions({"f", "g"})
    assert claimed.positions == {"f": 99}
    assert claimed.watermark == {"f": SIZE}
    assert reopened.pending_windows() == [Window(0, SIZE)]
    reopened.save_result(Window(0, SIZE), {"metrics": {"count": 1}})
    assert reopened.pending_windows() == []
    assert reopened.results() == [(Window(0, SIZE), {"metrics": {"count": 1}})]


def test_dead_letters_dedupe_by_position_and_count_per_window(make_store: Callable[..., Store]):
    store = make_store()
    letter = DeadLetter(DeadLetterReason.INVALID_JSON, "bad", b"{", Position("f", 7))
    _write(store, [_scored("a", 1_000, 0)], letters=[(letter, Window(0, SIZE))])
    again = _write(store, letters=[(letter, Window(0, SIZE))])
    assert again.new_dead_letters == 0
    assert store.window_contents(Window(0, SIZE)).invalid_by_reason == {"invalid_json": 1}


def test_prune_drops_rows_of_old_evaluated_windows_only(make_store: Callable[..., Store]):
    store = make_store()
    _write(store, [_scored("a", 1_000, 0), _scored("b", SIZE + 1, 1)])
    _close_through(store, SIZE)
    store.save_result(Window(0, SIZE), {"metrics": {}})
    assert store.prune(windows_before_ms=SIZE + 1, letters_before_ms=0) == 1
    assert store.window_contents(Window(0, SIZE)).count == 0
    assert store.window_contents(Window(SIZE, 2 * SIZE)).count == 1


def test_a_locked_database_raises_store_error_and_keeps_nothing_half_written(tmp_path: Path):
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    store._db.execute("PRAGMA busy_timeout=50")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError, match="cannot begin"):
        _write(store, [_scored("a", 1_000, 0)])
    blocker.execute("ROLLBACK")
    assert _write(store, [_scored("a", 1_000, 0)]).accepted == 1


def test_schema_version_mismatch_is_refused(tmp_path: Path):
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SQLiteStore(path)


def _with_vector(record_id: str, ts_ms: int, value: float) -> ScoredRecord:
    base = _scored(record_id, ts_ms, 0)
    vector = np.full(4, value, dtype=np.float32)
    return ScoredRecord(base.record, base.window, base.scores, {"emb": vector}, raw=b"raw")


def test_vector_sample_is_bounded_order_free_and_ignores_redelivery(
    make_store: Callable[..., Store],
):
    items = [_with_vector(f"id-{i}", 1_000 + i, float(i)) for i in range(50)]
    forward = make_store("a", vector_sample=10)
    for start in range(0, 50, 7):
        _write(forward, items[start : start + 7])
    _write(forward, items[:20])  # re-delivery
    backward = make_store("b", vector_sample=10)
    _write(backward, list(reversed(items)))
    window = Window(0, SIZE)
    a, b = forward.window_contents(window), backward.window_contents(window)
    assert a.vectors["emb"].shape == (10, 4)
    np.testing.assert_array_equal(a.vectors["emb"], b.vectors["emb"])
    expected = sorted(range(50), key=lambda i: sample_key(f"id-{i}"))[:10]
    assert a.vectors["emb"][:, 0].tolist() == [float(i) for i in expected]
    assert a.vector_prompts["emb"] == ("p",) * 10


def test_feedback_texts_references_and_outbox_round_trip(make_store: Callable[..., Store]):
    """The reads and small tables every store shares (monitor/store/sql.py)."""
    from monitor.store import OutboxItem

    store = make_store()
    kept = ScoredRecord(
        Record("t-1", 1_000, "m", "the prompt", "the reply", Position("f", 0), {"segment": "a"}),
        Window(0, SIZE),
        {"score": 0.5},
        keep_text=True,
        raw=b"raw",
    )
    _write(store, [kept, _scored("t-2", 2_000, 1)])
    known = store.add_feedback("t-1", "harmful", "rude", "ann")
    unknown = store.add_feedback("nope", "ok", None, None)
    assert (known.known, known.window_start_ms) == (True, 0)
    assert (unknown.known, unknown.window_start_ms) == (False, None)
    assert unknown.id > known.id
    assert store.feedback_counts(Window(0, SIZE)) == {"harmful": 1}
    assert store.flagged_record_ids(["harmful", "biased"], [0]) == [("t-1", "harmful")]
    texts = store.records_with_texts([0], ["t-2"])
    assert [(r["id"], r.get("prompt")) for r in texts] == [("t-1", "the prompt"), ("t-2", None)]

    store.save_reference("ref-a", "first_windows", b"A")
    store.save_reference("ref-b", "first_windows", b"B")
    assert store.latest_reference("first_windows") == b"B"
    assert store.latest_reference("baseline") is None

    _close_through(store, SIZE)
    item = OutboxItem("alert:x:0:firing", "hook", b'{"kind": "alert"}', 5)
    store.save_result(Window(0, SIZE), {"metrics": {"count": 2}}, outbox=[item])
    assert store.due_outbox(10, 10) == [item]
    store.outbox_settle(item, "pending", next_attempt_ms=100, error="HTTP 500")
    assert store.due_outbox(10, 10) == []
    assert store.outbox_wake() == 1
    store.outbox_settle(store.due_outbox(10, 10)[0], "sent")
    assert store.outbox_counts() == {"pending": 0, "sent": 1, "failed": 0}
    assert store.outbox_entries(5)[0]["attempts"] == 2
    assert store.evaluated_windows(limit=5) == [Window(0, SIZE)]
    assert store.results_for([Window(0, SIZE)]) == [(Window(0, SIZE), {"metrics": {"count": 2}})]


def test_nul_characters_in_ids_models_and_prompts_are_stored_and_found_again(
    make_store: Callable[..., Store],
):
    """Valid JSON may carry U+0000 (PostgreSQL text cannot): the record is still counted once,
    re-delivery is still a duplicate, feedback still finds it."""
    store = make_store()
    record = Record("id\x00x", 1_000, "model\x00", "p\x00", "r", Position("f", 0), {})
    vector = {"emb": np.ones(3, dtype=np.float32)}
    scored = ScoredRecord(record, Window(0, SIZE), {"score": 1.0}, vector, raw=b"raw")
    letter = DeadLetter(DeadLetterReason.INVALID_JSON, "bad \x00", b"{\x00", Position("f", 1))
    first = _write(store, [scored], letters=[(letter, Window(0, SIZE))])
    again = _write(store, [scored])
    assert (first.accepted, first.new_dead_letters, again.duplicates) == (1, 1, 1)
    assert store.add_feedback("id\x00x", "harmful", "note \x00", None).known is True
    contents = store.window_contents(Window(0, SIZE))
    assert contents.count == 1
    assert contents.invalid_by_reason == {"invalid_json": 1}
    assert contents.vectors["emb"].shape == (1, 3)


def test_the_longest_id_the_record_contract_allows_is_stored(make_store: Callable[..., Store]):
    """Ids are index keys; 512 four-byte characters, incompressible, stay under PostgreSQL's
    btree limit."""
    import random

    from monitor.records import MAX_ID_CHARS

    store = make_store()
    rng = random.Random(0)
    longest = "".join(chr(rng.randrange(0x10000, 0x10FFFF)) for _ in range(MAX_ID_CHARS))
    record = Record(longest, 1_000, "m", "p", "r", Position("f", 0), {})
    assert _write(store, [ScoredRecord(record, Window(0, SIZE), {"s": 1.0})]).accepted == 1
    assert store.records_with_texts([], [longest])[0]["id"] == longest
