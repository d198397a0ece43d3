"""Explanations: a planted new cluster is reported as grown, with its own example texts."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.drift.explain import explain_categorical, explain_embedding_drift, explain_score
from detectors.errors import DetectorError

CENTRES = np.random.default_rng(42).normal(scale=6.0, size=(5, 16))
NEW_CENTRE = np.full(16, 8.0)


def _clustered(rng: np.random.Generator, size: int, shares: list[float]) -> np.ndarray:
    labels = rng.choice(len(CENTRES), size=size, p=shares)
    return (CENTRES[labels] + rng.normal(size=(size, 16))).astype(np.float32)


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    reference = _clustered(rng, 1000, [0.2] * 5)
    old = _clustered(rng, 240, [0.2] * 5)
    new = (NEW_CENTRE + rng.normal(size=(60, 16))).astype(np.float32)
    texts = [f"old {i}" for i in range(240)] + [f"NEW topic {i}" for i in range(60)]
    window = np.concatenate([old, new])
    order = rng.permutation(300)
    return reference, window[order], [texts[i] for i in order]


def test_planted_cluster_is_named_as_grown_with_its_example_texts() -> None:
    reference, window, texts = _planted()
    explanation = explain_embedding_drift(reference, window, texts, clusters=5, examples=3)
    top = explanation["clusters"][0]
    assert top["cluster"] == -1, "a far-away topic lands outside every reference cluster"
    assert top["direction"] == "grew"
    assert -1 in explanation["grown"]
    assert top["window_share"] - top["reference_share"] > 0.15
    assert top["adjusted_p_value"] < 0.001
    assert len(top["examples"]) == 3
    assert all(text.startswith("NEW topic") for text in top["examples"])
    assert explanation["test"]["p_value"] < 0.001


def test_a_vanished_cluster_is_named_as_shrunk() -> None:
    rng = np.random.default_rng(1)
    reference = _clustered(rng, 1000, [0.2] * 5)
    window = _clustered(rng, 400, [0.25, 0.25, 0.25, 0.25, 0.0])
    explanation = explain_embedding_drift(reference, window, clusters=5)
    assert len(explanation["shrunk"]) == 1
    gone = explanation["clusters"][-1]
    assert gone["direction"] == "shrank" and gone["window_share"] == 0.0
    assert "examples" not in gone  # no texts given


def test_no_drift_names_nothing() -> None:
    rng = np.random.default_rng(2)
    explanation = explain_embedding_drift(
        _clustered(rng, 1000, [0.2] * 5), _clustered(rng, 300, [0.2] * 5), clusters=5
    )
    assert explanation["grown"] == [] and explanation["shrunk"] == []


def test_texts_must_align_with_window_rows() -> None:
    reference, window, texts = _planted()
    with pytest.raises(DetectorError, match="texts"):
        explain_embedding_drift(reference, window, texts[:-1])


def test_score_and_category_summaries_show_direction() -> None:
    summary = explain_score(np.arange(100.0), np.arange(100.0) + 50)
    assert summary["window"]["mean"] - summary["reference"]["mean"] == pytest.approx(50)
    changes = explain_categorical({"a": 80, "b": 20}, {"a": 20, "b": 20, "c": 60})["changes"]
    assert [row["category"] for row in changes] == ["a", "c", "b"]
    assert changes[1]["reference_share"] == 0.0 and changes[1]["window_share"] == 0.6
