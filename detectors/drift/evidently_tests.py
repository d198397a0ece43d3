"""Evidently's embedding drift methods (evidently 0.7, ``evidently.legacy.metrics.data_drift.
embedding_drift_methods``) behind the DriftTest contract, for side-by-side comparison.

They decide by a threshold (or a bootstrap percentile) and give no p-value, so results
carry Evidently's own drift score and decision with ``p_value=None`` and stay outside the
window's multiple-testing correction. Options and defaults mirror Evidently's factories.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, validate_call

from detectors.drift.base import Kind, TestResult, matched_matrices

Probability = Annotated[float, Field(gt=0, lt=1)]
Components = Annotated[int, Field(ge=1)] | None


class _EvidentlyMethod:
    """Builds Evidently's method ``factory(**options)`` and calls it as Evidently does,
    ``method(current, reference)``, on fresh DataFrames (its model method adds a column
    to the frames it is given)."""

    name: str
    kind: Kind = "embedding"
    factory: str
    options: dict[str, Any]

    def test(self, reference: Any, window: Any) -> TestResult:
        from evidently.legacy.metrics.data_drift import embedding_drift_methods

        ref, win = matched_matrices(reference, window)
        method = getattr(embedding_drift_methods, self.factory)(**self.options)
        score, drifted, method_name = method(
            pd.DataFrame(win.astype(np.float64)), pd.DataFrame(ref.astype(np.float64))
        )
        details = {
            "evidently_method": str(method_name),
            "n_reference": int(ref.shape[0]),
            "n_window": int(win.shape[0]),
        }
        return TestResult(float(score), None, None, drifted=bool(drifted), details=details)


class EvidentlyMMD(_EvidentlyMethod):
    """Evidently's MMD: unbiased MMD^2 against a fixed 0.015 threshold by default."""

    name = "evidently_mmd"
    factory = "mmd"

    @validate_call
    def __init__(
        self,
        threshold: float = 0.015,
        bootstrap: bool | None = None,
        quantile_probability: Probability = 0.05,
        pca_components: Components = None,
    ):
        self.options = {
            "threshold": threshold,
            "bootstrap": bootstrap,
            "quantile_probability": quantile_probability,
            "pca_components": pca_components,
        }


class EvidentlyModel(_EvidentlyMethod):
    """Evidently's default: a domain classifier's ROC AUC on one split against 0.55."""

    name = "evidently_model"
    factory = "model"

    @validate_call
    def __init__(
        self,
        threshold: float = 0.55,
        bootstrap: bool | None = None,
        quantile_probability: Probability = 0.95,
        pca_components: Components = None,
    ):
        self.options = {
            "threshold": threshold,
            "bootstrap": bootstrap,
            "quantile_probability": quantile_probability,
            "pca_components": pca_components,
        }


class EvidentlyRatio(_EvidentlyMethod):
    """Evidently's ratio: share of components whose own test drifts, against 0.2."""

    name = "evidently_ratio"
    factory = "ratio"

    @validate_call
    def __init__(
        self,
        component_stattest: str = "wasserstein",
        component_stattest_threshold: float = 0.1,
        threshold: float = 0.2,
        pca_components: Components = None,
    ):
        self.options = {
            "component_stattest": component_stattest,
            "component_stattest_threshold": component_stattest_threshold,
            "threshold": threshold,
            "pca_components": pca_components,
        }


class EvidentlyDistance(_EvidentlyMethod):
    """Evidently's distance between mean embeddings, against 0.2 by default."""

    name = "evidently_distance"
    factory = "distance"

    @validate_call
    def __init__(
        self,
        dist: Literal["euclidean", "cosine", "cityblock", "chebyshev"] = "euclidean",
        threshold: float = 0.2,
        bootstrap: bool | None = None,
        quantile_probability: Probability = 0.95,
        pca_components: Components = None,
    ):
        self.options = {
            "dist": dist,
            "threshold": threshold,
            "bootstrap": bootstrap,
            "quantile_probability": quantile_probability,
            "pca_components": pca_components,
        }
