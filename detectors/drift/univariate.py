"""Per-score and per-categorical-field tests. Classes hold options; maths is in ``stats``.

KS, Wasserstein and chi-squared report p-values and join the window's correction. PSI
and Jensen-Shannon are distances: p_value None, outside the correction, ``drifted`` when
the distance exceeds a documented threshold (docs/drift.md gives their null expectation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import numpy as np
from pydantic import Field, validate_call

from detectors.drift import stats
from detectors.drift.base import Kind, TestResult, as_counts, as_values, permutation_p_value


def _sizes(reference: np.ndarray, window: np.ndarray) -> dict[str, Any]:
    return {"n_reference": int(reference.size), "n_window": int(window.size)}


class KolmogorovSmirnov:
    """Two-sample KS test; its D (largest CDF gap, in [0, 1]) doubles as the effect size."""

    name = "ks"
    kind: Kind = "continuous"

    def test(self, reference: Any, window: Any) -> TestResult:
        ref = as_values(reference, side="reference")
        win = as_values(window, side="window")
        statistic, p_value = stats.ks(ref, win)
        return TestResult(statistic, p_value, statistic, details=_sizes(ref, win))


class Wasserstein:
    """Wasserstein-1 distance with a permutation p-value.

    Effect size is the distance over the reference's standard deviation (None for a
    constant reference), so it reads in reference spreads whatever the score's unit.
    """

    name = "wasserstein"
    kind: Kind = "continuous"

    @validate_call
    def __init__(self, permutations: Annotated[int, Field(ge=19, le=100_000)] = 500, seed: int = 0):
        self.permutations = permutations
        self.seed = seed

    def test(self, reference: Any, window: Any) -> TestResult:
        ref = as_values(reference, side="reference")
        win = as_values(window, side="window")
        rng = np.random.default_rng(self.seed)
        statistic, null = stats.wasserstein_null(ref, win, self.permutations, rng)
        spread = float(np.std(ref))
        effect = statistic / spread if spread > 0 else None
        details = _sizes(ref, win) | {"permutations": self.permutations}
        return TestResult(statistic, permutation_p_value(statistic, null), effect, details=details)


class ChiSquared:
    """Chi-squared homogeneity test on category counts; effect size is Cramer's V."""

    name = "chi2"
    kind: Kind = "categorical"

    @validate_call
    def __init__(self, min_expected: Annotated[float, Field(gt=0, le=100)] = 5.0):
        self.min_expected = min_expected

    def test(self, reference: Any, window: Any) -> TestResult:
        ref = as_counts(reference, side="reference")
        win = as_counts(window, side="window")
        statistic, p_value, dof, pooled = stats.chi2_counts(ref, win, self.min_expected)
        total = sum(ref.values()) + sum(win.values())
        details = {
            "dof": dof,
            "pooled_categories": pooled,
            "n_reference": sum(ref.values()),
            "n_window": sum(win.values()),
        }
        return TestResult(statistic, p_value, stats.cramers_v(statistic, total), details=details)


class _BinnedDistance:
    """A distance between reference-quantile histograms, decided by a threshold.

    ``details["chance_level"]`` is the distance's mean under no drift at these sample
    sizes: both are chi-squared-like, with mean (bins - 1)(1/m + 1/n) for PSI and about
    the square root of an eighth of that for Jensen-Shannon. A threshold near the chance
    level fires on noise, so it tells whether the window is large enough for the threshold.
    """

    name: str
    kind: Kind = "continuous"
    distance: Callable[[np.ndarray, np.ndarray], float]
    chance_level: Callable[[float], float]

    def __init__(self, bins: int, threshold: float):
        self.bins = bins
        self.threshold = threshold

    def test(self, reference: Any, window: Any) -> TestResult:
        ref = as_values(reference, side="reference")
        win = as_values(window, side="window")
        edges = stats.reference_bins(ref, self.bins)
        ref_shares = stats.binned_shares(ref, edges)
        win_shares = stats.binned_shares(win, edges)
        value = self.distance(ref_shares, win_shares)
        chi2_mean = edges.size * (1 / ref.size + 1 / win.size)
        details: Mapping[str, Any] = _sizes(ref, win) | {
            "threshold": self.threshold,
            "bins": int(edges.size + 1),
            "chance_level": self.chance_level(chi2_mean),
        }
        return TestResult(value, None, value, drifted=value > self.threshold, details=details)


class PopulationStabilityIndex(_BinnedDistance):
    """PSI over reference deciles; drifted above 0.25, the usual "significant shift" mark."""

    name = "psi"
    distance = staticmethod(stats.psi)
    chance_level = staticmethod(float)

    @validate_call
    def __init__(
        self,
        bins: Annotated[int, Field(ge=2, le=100)] = 10,
        threshold: Annotated[float, Field(gt=0)] = 0.25,
    ):
        super().__init__(bins, threshold)


class JensenShannon(_BinnedDistance):
    """Jensen-Shannon distance over reference deciles; drifted above 0.1 (Evidently's mark)."""

    name = "jensen_shannon"
    distance = staticmethod(stats.js_distance)
    chance_level = staticmethod(lambda chi2_mean: float(np.sqrt(chi2_mean / 8)))

    @validate_call
    def __init__(
        self,
        bins: Annotated[int, Field(ge=2, le=100)] = 10,
        threshold: Annotated[float, Field(gt=0, le=1)] = 0.1,
    ):
        super().__init__(bins, threshold)
