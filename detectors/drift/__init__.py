"""Statistical drift tests by config name, the reference snapshot and the window runner.

Import strings keep torch (MMD), scikit-learn (classifier) and Evidently off the import
path until a test that needs them is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.drift.base import DriftTest, Kind, TestResult
from detectors.drift.correction import Correction, adjust_p_values
from detectors.drift.reference import ReferenceSnapshot, build_reference
from detectors.drift.runner import DriftReport, TestOutcome, WindowData, run_drift_tests
from detectors.registry import create

DRIFT_TESTS: dict[str, str] = {
    "ks": "detectors.drift.univariate:KolmogorovSmirnov",
    "wasserstein": "detectors.drift.univariate:Wasserstein",
    "chi2": "detectors.drift.univariate:ChiSquared",
    "psi": "detectors.drift.univariate:PopulationStabilityIndex",
    "jensen_shannon": "detectors.drift.univariate:JensenShannon",
    "mmd": "detectors.drift.mmd:MMD",
    "classifier": "detectors.drift.classifier:DomainClassifier",
    "evidently_mmd": "detectors.drift.evidently_tests:EvidentlyMMD",
    "evidently_model": "detectors.drift.evidently_tests:EvidentlyModel",
    "evidently_ratio": "detectors.drift.evidently_tests:EvidentlyRatio",
    "evidently_distance": "detectors.drift.evidently_tests:EvidentlyDistance",
}


def create_drift_test(name: str, options: Mapping[str, Any] | None = None) -> DriftTest:
    """Build the drift test registered as ``name``; bad options raise DetectorError."""
    return create(DRIFT_TESTS, name, "drift test", options)


__all__ = [
    "DRIFT_TESTS",
    "Correction",
    "DriftReport",
    "DriftTest",
    "Kind",
    "ReferenceSnapshot",
    "TestOutcome",
    "TestResult",
    "WindowData",
    "adjust_p_values",
    "build_reference",
    "create_drift_test",
    "run_drift_tests",
]
