"""MMD: the exact path against a plain numpy computation, the Fourier approximation
against the exact value within its stated error, and calibration of the Fourier path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import cdist

from detectors.drift import _mmd_torch, create_drift_test
from detectors.drift.mmd import MMD
from detectors.errors import DetectorError


def _gaussians(seed: int, m: int, n: int, d: int, shift: float = 0.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(m, d)).astype(np.float32)
    window = rng.normal(size=(n, d)).astype(np.float32)
    window[: n // 5] += shift
    return reference, window


def test_creating_the_mmd_test_does_not_import_torch() -> None:
    """torch loads when an MMD test first runs, not when config builds it."""
    probe = "import sys; from detectors.drift import create_drift_test as c; c('mmd'); "
    probe += "print(sorted({'torch', 'sklearn', 'evidently'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_exact_statistic_is_the_biased_mmd2_of_the_median_heuristic_kernel() -> None:
    reference, window = _gaussians(0, 60, 40, 5, shift=1.0)
    result = MMD(method="exact").test(reference, window)
    gamma = result.details["gamma"]
    pooled = np.concatenate([reference, window]).astype(np.float64)
    distances = cdist(pooled, pooled, "sqeuclidean")
    pairs = np.sort(distances[np.triu_indices(100, 1)])
    assert gamma == pytest.approx(1 / pairs[(pairs.size - 1) // 2], rel=1e-4)  # lower median
    weights = np.r_[np.full(60, 1 / 60), np.full(40, -1 / 40)]
    assert result.statistic == pytest.approx(
        weights @ np.exp(-gamma * distances) @ weights, rel=1e-4
    )
    assert result.details["method"] == "exact"


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_fourier_error_against_exact_is_within_its_stated_error(shift: float) -> None:
    """Over independent feature draws, (fourier - exact) / stated error behaves like N(0, 1)."""
    reference, window = _gaussians(1, 300, 300, 32, shift=shift)
    options = {"bandwidth_sample": 600, "permutations": 19}
    exact = MMD(method="exact", **options).test(reference, window)
    z = []
    for seed in range(20):
        approx = MMD(method="fourier", frequencies=256, seed=seed, **options).test(
            reference, window
        )
        assert approx.details["gamma"] == pytest.approx(exact.details["gamma"])
        z.append((approx.statistic - exact.statistic) / approx.details["approx_std_error"])
    assert np.max(np.abs(z)) < 4.0
    assert abs(np.mean(z)) < 1.0
    assert 0.4 < np.std(z) < 1.6


def test_auto_switches_to_fourier_above_exact_max_and_caps_samples() -> None:
    reference, window = _gaussians(2, 400, 300, 8)
    small = MMD(exact_max=1000, permutations=19).test(reference, window)
    large = MMD(exact_max=499, permutations=19, max_samples=250).test(reference, window)
    assert small.details["method"] == "exact"
    assert large.details["method"] == "fourier"
    assert (large.details["n_reference"], large.details["n_window"]) == (250, 250)


def test_relabellings_are_permutations_of_the_observed_labels() -> None:
    labels = np.r_[np.full(30, 1 / 30), np.full(20, -1 / 20)].astype(np.float32)
    for permutations in (10, 40_000):  # full shuffles, then cyclic shifts (W over 2**18)
        rows = _mmd_torch.relabellings(labels, permutations, np.random.default_rng(0))
        assert rows.shape == (permutations + 1, 50)
        assert np.array_equal(rows[0], labels)
        assert np.array_equal(np.sort(rows, axis=1), np.broadcast_to(np.sort(labels), rows.shape))
        assert len({row.tobytes() for row in rows[1:]}) > min(permutations, 50) // 2


@pytest.mark.parametrize("regime", ["shuffled", "cyclic"])
def test_fourier_path_false_alarm_rate_is_at_most_alpha(
    regime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if regime == "cyclic":
        monkeypatch.setattr(_mmd_torch, "_SHUFFLED_MAX", 0)
    test = MMD(method="fourier", permutations=199)
    alarms = sum(test.test(*_gaussians(seed, 200, 100, 16)).p_value <= 0.05 for seed in range(200))
    assert stats.binom.sf(alarms - 1, 200, 0.05) >= 0.001, f"{alarms}/200 null windows alarmed"


def test_fourier_path_detects_a_new_cluster() -> None:
    test = MMD(method="fourier", permutations=199)
    assert all(test.test(*_gaussians(seed, 600, 300, 16, 3.0)).p_value <= 0.05 for seed in range(5))


def test_mismatched_widths_and_bad_device_are_rejected() -> None:
    with pytest.raises(DetectorError, match="widths differ"):
        MMD().test(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(DetectorError, match="device"):
        create_drift_test("mmd", {"device": "tpu"})
    if not torch.cuda.is_available():
        with pytest.raises(DetectorError, match="CUDA is not available"):
            MMD(device="cuda").test(np.zeros((5, 3)), np.ones((5, 3)))
