"""Reference snapshots: deterministic bounded subsampling, immutability, byte round trip."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pytest

from detectors.drift import ReferenceSnapshot, build_reference
from detectors.drift.reference import FORMAT
from detectors.errors import DetectorError


def _inputs(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    toxicity = rng.random(5000)
    toxicity[:3] = np.nan
    return {
        "scores": {"toxicity": toxicity, "tokens": rng.integers(0, 400, 800).astype(float)},
        "categoricals": {"model": ["a"] * 70 + ["b"] * 30, "segment": ["x", "y", "x"]},
        "embeddings": {"prompt": rng.normal(size=(3000, 8))},
    }


def test_build_caps_drops_non_finite_and_counts_in_full() -> None:
    snapshot = build_reference(**_inputs(), max_samples=1000, max_embeddings=500, seed=1)
    assert snapshot.scores["toxicity"].shape == (1000,)
    assert np.isfinite(snapshot.scores["toxicity"]).all()
    assert snapshot.scores["tokens"].shape == (800,)
    assert snapshot.embeddings["prompt"].shape == (500, 8)
    assert snapshot.embeddings["prompt"].dtype == np.float32
    assert dict(snapshot.categoricals["model"]) == {"a": 70, "b": 30}
    assert snapshot.id.startswith("ref-")


def test_same_inputs_and_seed_give_the_same_snapshot_and_id() -> None:
    first = build_reference(**_inputs(), max_samples=1000, seed=1)
    again = build_reference(**_inputs(), max_samples=1000, seed=1)
    other = build_reference(**_inputs(), max_samples=1000, seed=2)
    assert np.array_equal(first.scores["toxicity"], again.scores["toxicity"])
    assert first.id == again.id != other.id


def test_a_field_subsample_does_not_depend_on_other_fields() -> None:
    inputs = _inputs()
    alone = build_reference({"toxicity": inputs["scores"]["toxicity"]}, {}, max_samples=100)
    together = build_reference(inputs["scores"], {}, max_samples=100)
    assert np.array_equal(alone.scores["toxicity"], together.scores["toxicity"])


def test_snapshot_is_read_only() -> None:
    snapshot = build_reference(**_inputs())
    with pytest.raises(ValueError, match="read-only"):
        snapshot.scores["tokens"][0] = 1.0
    with pytest.raises(TypeError):
        snapshot.scores["new"] = np.zeros(3)  # type: ignore[index]


def test_bytes_round_trip_keeps_everything() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    snapshot = build_reference(**_inputs(), reference_id="baseline-7", created_at=created)
    loaded = ReferenceSnapshot.from_bytes(snapshot.to_bytes())
    assert (loaded.id, loaded.created_at) == ("baseline-7", created)
    for name, values in snapshot.scores.items():
        assert np.array_equal(loaded.scores[name], values)
    assert np.array_equal(loaded.embeddings["prompt"], snapshot.embeddings["prompt"])
    assert {k: dict(v) for k, v in loaded.categoricals.items()} == {
        k: dict(v) for k, v in snapshot.categoricals.items()
    }


def test_bytes_are_compact() -> None:
    snapshot = build_reference(**_inputs(), max_embeddings=2000)
    raw = sum(v.nbytes for v in snapshot.scores.values()) + snapshot.embeddings["prompt"].nbytes
    assert len(snapshot.to_bytes()) < raw


def test_other_formats_and_garbage_are_detector_errors() -> None:
    buffer = io.BytesIO()
    meta = np.frombuffer(b'{"format": "something/9"}', dtype=np.uint8)
    np.savez(buffer, meta=meta)
    with pytest.raises(DetectorError, match=FORMAT):
        ReferenceSnapshot.from_bytes(buffer.getvalue())
    with pytest.raises(DetectorError, match="unreadable"):
        ReferenceSnapshot.from_bytes(b"not a zip")


def test_naive_timestamps_and_bad_caps_are_rejected() -> None:
    with pytest.raises(DetectorError, match="timezone"):
        ReferenceSnapshot("x", datetime(2026, 1, 1), {}, {}, {})
    with pytest.raises(DetectorError, match="at least 1"):
        build_reference({}, {}, max_samples=0)
