"""Partial window states merge into what one worker seeing everything would evaluate."""

from __future__ import annotations

import random
from functools import reduce

import numpy as np
import pytest

from monitor.evaluation import aggregate
from monitor.store.sql import sample_key
from monitor.window_state import SampledVector, StoredRecord, WindowPartial
from monitor.windows import Window, WindowContents

WINDOW = Window(0, 60_000)
K = 8


def _partial(records: list[tuple[str, float]], letters: dict[str, int]) -> WindowPartial:
    """What a worker stores for these records: every record, and its own bottom-k vectors."""
    samples = sorted(
        SampledVector(sample_key(rid), rid, np.full(3, value, dtype=np.float32), f"p-{rid}")
        for rid, value in records
    )[:K]
    return WindowPartial(
        K,
        {
            rid: StoredRecord("m" if value < 0.5 else "n", {"v": value}, {"s": value})
            for rid, value in records
        },
        letters,
        {"emb": tuple(samples)} if samples else {},
    )


def _assert_same(a: WindowContents, b: WindowContents) -> None:
    assert a.models == b.models
    assert a.metadata == b.metadata
    assert a.invalid_by_reason == b.invalid_by_reason
    assert a.late_count == b.late_count
    assert a.scores.keys() == b.scores.keys()
    for name in a.scores:
        np.testing.assert_array_equal(a.scores[name], b.scores[name])
    assert a.vectors.keys() == b.vectors.keys()
    for name in a.vectors:
        np.testing.assert_array_equal(a.vectors[name], b.vectors[name])
    assert a.vector_prompts == b.vector_prompts
    assert aggregate(a, [0.5, 0.9]) == aggregate(b, [0.5, 0.9])


@pytest.mark.parametrize("seed", range(5))
def test_merged_partials_equal_one_worker_seeing_every_partition(seed: int):
    rng = random.Random(seed)
    records = [(f"r{seed}-{i}", rng.random()) for i in range(60)]
    partitions = [records[i::3] for i in range(3)]
    letters = [{"invalid_json": 2, "late": 1}, {"too_large": 1}, {"invalid_json": 1}]
    a, b, c = (_partial(p, letter) for p, letter in zip(partitions, letters, strict=True))
    one_worker = _partial(records, {"invalid_json": 3, "too_large": 1, "late": 1})

    expected = one_worker.contents(WINDOW)
    _assert_same(a.merge(b).merge(c).contents(WINDOW), expected)
    _assert_same(a.merge(b.merge(c)).contents(WINDOW), expected)  # associative
    _assert_same(c.merge(a).merge(b).contents(WINDOW), expected)  # and in any order
    assert expected.count == 60
    assert expected.late_count == 1
    assert expected.vectors["emb"].shape == (K, 3)


def test_a_record_in_two_partials_counts_once_and_empty_partials_change_nothing():
    records = [(f"id-{i}", i / 10) for i in range(10)]
    redelivered = _partial(records[:6], {})
    rest = _partial(records[4:], {})
    empty = WindowPartial(K)
    merged = reduce(WindowPartial.merge, [empty, redelivered, rest, empty])
    _assert_same(merged.contents(WINDOW), _partial(records, {}).contents(WINDOW))
