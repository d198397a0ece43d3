"""The pure statistics and the multiple-testing correction, against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from detectors.drift import adjust_p_values, create_drift_test
from detectors.drift import stats as drift_stats
from detectors.drift.base import permutation_p_value
from detectors.errors import DetectorError


def test_wasserstein_and_its_null_match_scipy_on_the_drawn_relabellings() -> None:
    rng = np.random.default_rng(0)
    reference, window = rng.normal(size=80), np.round(rng.normal(0.5, 2.0, size=50), 1)
    observed, null = drift_stats.wasserstein_null(reference, window, 10, np.random.default_rng(5))
    assert observed == pytest.approx(scipy_stats.wasserstein_distance(reference, window))
    pooled = np.concatenate([reference, window])
    is_ref = np.arange(pooled.size) < reference.size
    labels = np.random.default_rng(5).permuted(np.broadcast_to(is_ref, (10, pooled.size)), axis=1)
    expected = [scipy_stats.wasserstein_distance(pooled[row], pooled[~row]) for row in labels]
    assert null == pytest.approx(expected)


def test_permutation_p_value_counts_the_observed_draw() -> None:
    assert permutation_p_value(1.0, np.array([0.5, 2.0, 1.0])) == pytest.approx(3 / 4)
    assert permutation_p_value(9.0, np.zeros(99)) == pytest.approx(1 / 100)


def test_chi2_pools_rare_and_new_categories() -> None:
    reference = {"a": 500, "b": 300, "c": 3}
    window = {"a": 50, "b": 40, "new": 1}
    statistic, p_value, dof, pooled = drift_stats.chi2_counts(reference, window)
    # "new" and "c" are too rare alone and still too small together, so they join "b".
    assert pooled == ["new", "c", "b"]
    table = np.array([[500, 303], [50, 41]])
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert (statistic, p_value, dof) == pytest.approx(expected[:3])


def test_chi2_with_one_category_left_is_no_evidence() -> None:
    assert drift_stats.chi2_counts({"a": 10}, {"a": 5})[:2] == (0.0, 1.0)


def test_psi_and_js_on_known_histograms() -> None:
    r, w = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    assert drift_stats.psi(r, w) == pytest.approx(0.4 * np.log(1.8) - 0.4 * np.log(0.2))
    m = (r + w) / 2
    divergence = (scipy_stats.entropy(r, m) + scipy_stats.entropy(w, m)) / 2
    assert drift_stats.js_distance(r, w) == pytest.approx(np.sqrt(divergence))
    assert drift_stats.psi(r, r) == 0.0


def test_reference_bins_separate_the_values_of_a_flag() -> None:
    flags = np.r_[np.zeros(95), np.ones(5)]
    edges = drift_stats.reference_bins(flags, 10)
    assert drift_stats.binned_shares(flags, edges)[0] == pytest.approx(0.95)
    all_ones = drift_stats.binned_shares(np.ones(10), edges)
    assert all_ones[0] == 0.0


@pytest.mark.parametrize("name", ["psi", "jensen_shannon"])
def test_distance_chance_level_is_its_mean_under_no_drift(name: str) -> None:
    rng = np.random.default_rng(3)
    test = create_drift_test(name)
    results = [test.test(rng.normal(size=1000), rng.normal(size=200)) for _ in range(200)]
    level = results[0].details["chance_level"]
    assert np.mean([r.statistic for r in results]) == pytest.approx(level, rel=0.15)


def test_benjamini_hochberg_matches_the_step_up_definition() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # Sorted: 0.005, 0.01, 0.03, 0.04, 0.5 -> p * 5 / rank, then running minimum from the top.
    expected_sorted = [0.025, 0.025, 0.05, 0.05, 0.5]
    order = np.argsort(p)
    adjusted = adjust_p_values(p, "bh")
    assert adjusted[order] == pytest.approx(expected_sorted)


def test_bonferroni_caps_at_one() -> None:
    assert adjust_p_values([0.01, 0.3], "bonferroni") == pytest.approx([0.02, 0.6])
    assert adjust_p_values([0.9, 0.9], "bonferroni") == pytest.approx([1.0, 1.0])
    assert adjust_p_values([], "bh").size == 0


@pytest.mark.parametrize("bad", [[1.5], [-0.1], [np.nan]])
def test_bad_p_values_are_rejected(bad: list[float]) -> None:
    with pytest.raises(DetectorError):
        adjust_p_values(bad, "bh")


def test_unknown_correction_is_rejected() -> None:
    with pytest.raises(DetectorError, match="unknown correction"):
        adjust_p_values([0.1], "holm")  # type: ignore[arg-type]
