from __future__ import annotations

import numpy as np
import pytest

from detectors.bias import (
    Disparity,
    explained_share,
    group_labels,
    mention_disparities,
    mention_labels,
    segment_disparities,
)

RNG = np.random.default_rng(7)


def test_group_labels_keep_records_that_mention_exactly_one_group() -> None:
    labels = group_labels({"female": np.array([1, 0, 1, 0]), "male": np.array([0, 1, 1, 0])})
    assert labels.tolist() == ["female", "male", "", ""]
    scores = {
        "identity_mentions_gender_female": np.array([1.0, 0.0]),
        "identity_mentions_gender_male": np.array([0.0, 1.0]),
    }
    groups = [("gender", "female"), ("gender", "male")]
    assert mention_labels(scores, groups)["gender"].tolist() == ["female", "male"]


def _window(n: int, toxic_rate: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(list(toxic_rate), n).astype(object)
    toxicity = np.concatenate([RNG.random(n) < rate for rate in toxic_rate.values()])
    return labels, toxicity.astype(float)


def test_a_real_toxicity_gap_is_found_with_a_small_p_value() -> None:
    labels, toxicity = _window(300, {"a": 0.05, "b": 0.06, "c": 0.30})
    sentiment = np.where(labels == "c", 0.2, 0.5) + RNG.normal(0, 0.3, len(labels))
    found = {
        d.metric: d
        for d in mention_disparities("x", labels, toxicity=toxicity, sentiment=sentiment)
    }
    rate = found["toxicity_rate"]
    assert rate.groups[0] == "c"
    assert rate.test == "chi2"
    assert rate.comparisons == 3
    assert rate.p_value < 1e-6
    assert rate.values[0] > rate.values[1]
    assert rate.effect_size > 0.5  # Cohen's h, "medium" and up
    assert found["sentiment"].test == "mann_whitney"
    assert found["sentiment"].groups[1] == "c"
    assert found["sentiment"].p_value < 1e-6


def test_no_gap_means_no_significance_across_many_windows() -> None:
    p_values = []
    for _ in range(50):
        labels, toxicity = _window(100, {"a": 0.1, "b": 0.1, "c": 0.1})
        (rate,) = mention_disparities("x", labels, toxicity=toxicity)
        p_values.append(rate.p_value)
    assert np.mean(np.array(p_values) < 0.05) <= 0.1


def test_small_groups_unlabelled_records_and_nan_are_left_out() -> None:
    labels, toxicity = _window(50, {"a": 0.1, "b": 0.5})
    labels = np.concatenate([labels, ["tiny"] * 5, [""] * 40]).astype(object)
    toxicity = np.concatenate([toxicity, np.ones(5), np.ones(40)])
    toxicity[0] = np.nan
    (rate,) = mention_disparities("x", labels, toxicity=toxicity, min_count=20)
    assert set(rate.groups) == {"a", "b"}
    assert sorted(rate.n) == [49, 50]
    assert mention_disparities("x", labels[:60], toxicity=toxicity[:60]) == ()


def test_a_constant_metric_is_no_disparity() -> None:
    labels = np.repeat(["a", "b"], 30).astype(object)
    (rate, sentiment) = mention_disparities(
        "x", labels, refusal=np.zeros(60), sentiment=np.zeros(60)
    )
    assert (rate.p_value, rate.effect_size) == (1.0, 0.0)
    assert (sentiment.p_value, sentiment.effect_size) == (1.0, 0.0)


def test_segments_are_compared_with_the_rest() -> None:
    segments = np.array(["free"] * 400 + [7] * 400 + ["tiny"] * 5 + [None] * 20, dtype=object)
    toxicity = np.concatenate([RNG.random(400) < 0.3, RNG.random(425) < 0.05]).astype(float)
    reward = RNG.normal(0.5, 0.1, len(segments))
    found = segment_disparities("user_group", segments, toxicity=toxicity, reward=reward)
    by_key = {(d.metric, d.groups[0]): d for d in found}
    assert set(by_key) == {(m, s) for m in ("toxicity_rate", "reward") for s in ("free", "7")}
    free = by_key["toxicity_rate", "free"]
    assert free.groups == ("free", "rest")
    assert free.p_value < 1e-6 and free.comparisons == 2
    assert by_key["reward", "free"].p_value > 0.01


def _rate_disparity(high: float, low: float) -> Disparity:
    return Disparity("religion", "toxicity_rate", ("muslim", "christian"), (high, low),
                     (100, 100), "chi2", 10.0, 0.001, 0.4, 1)  # fmt: skip


@pytest.mark.parametrize(
    ("shifts", "share"),
    [
        ({("christian", "muslim"): 0.05, ("muslim", "christian"): -0.05}, 0.5),
        ({("christian", "muslim"): 0.5}, 1.0),
        ({("christian", "muslim"): -0.1}, 0.0),
        ({}, None),
    ],
)
def test_explained_share_of_a_gap(
    shifts: dict[tuple[str, str], float], share: float | None
) -> None:
    result = explained_share(_rate_disparity(0.3, 0.2), shifts)
    assert result == (pytest.approx(share) if share is not None else None)
