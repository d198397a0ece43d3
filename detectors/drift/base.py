"""The drift-test contract: two samples in, one frozen result out.

A test compares a reference sample with a window sample of one field. What a sample is
depends on the test's ``kind``:

- ``"continuous"``: a 1-d float array (non-finite values are dropped);
- ``"categorical"``: a mapping of category to count;
- ``"embedding"``: a 2-d float array, one row per record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from detectors.errors import DetectorError

Kind = Literal["continuous", "categorical", "embedding"]


@dataclass(frozen=True)
class TestResult:
    """One test on one field.

    ``p_value`` is None for threshold-only tests (distances, Evidently's methods); those
    set ``drifted`` themselves. Tests with a p-value leave ``drifted`` None: the decision
    is taken after the window's multiple-testing correction. ``details`` holds only
    JSON-ready values (str, int, float, bool, lists and dicts of them).
    """

    __test__ = False  # not a pytest test class

    statistic: float
    p_value: float | None
    effect_size: float | None = None
    drifted: bool | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class DriftTest(Protocol):
    """A two-sample test; instances hold options only, so one instance serves all windows."""

    name: str
    kind: Kind

    def test(self, reference: Any, window: Any) -> TestResult: ...


def as_values(sample: Any, *, side: str, minimum: int = 2) -> np.ndarray:
    """A 1-d float64 array of the finite values of ``sample``."""
    values = np.asarray(sample, dtype=np.float64)
    if values.ndim != 1:
        raise DetectorError(f"{side} sample must be 1-d, got shape {values.shape}")
    values = values[np.isfinite(values)]
    if values.size < minimum:
        raise DetectorError(f"{side} sample has {values.size} finite values; need {minimum}")
    return values


def as_matrix(sample: Any, *, side: str, minimum: int = 2) -> np.ndarray:
    """A 2-d float32 array of the rows of ``sample`` that are entirely finite."""
    rows = np.asarray(sample, dtype=np.float32)
    if rows.ndim != 2:
        raise DetectorError(f"{side} embeddings must be 2-d, got shape {rows.shape}")
    rows = rows[np.isfinite(rows).all(axis=1)]
    if rows.shape[0] < minimum:
        raise DetectorError(f"{side} embeddings have {rows.shape[0]} finite rows; need {minimum}")
    return rows


def as_counts(sample: Any, *, side: str) -> dict[str, int]:
    """A category -> count dict with positive integer counts."""
    if not isinstance(sample, Mapping):
        raise DetectorError(f"{side} categorical sample must map category to count")
    if any(int(v) < 0 for v in sample.values()):
        raise DetectorError(f"{side} categorical counts must not be negative")
    counts = {str(k): int(v) for k, v in sample.items() if int(v) > 0}
    if not counts:
        raise DetectorError(f"{side} categorical sample is empty")
    return counts


def matched_matrices(reference: Any, window: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both embedding samples as float32 matrices of one width."""
    ref = as_matrix(reference, side="reference")
    win = as_matrix(window, side="window")
    if ref.shape[1] != win.shape[1]:
        raise DetectorError(
            f"embedding widths differ: reference {ref.shape[1]}, window {win.shape[1]}"
        )
    return ref, win


def subsample_rows(rows: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` rows drawn without replacement, in their original order."""
    if cap is None or rows.shape[0] <= cap:
        return rows
    return rows[np.sort(rng.choice(rows.shape[0], size=cap, replace=False))]


def sampled_matrices(
    reference: Any, window: Any, cap: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Both embedding samples as matched matrices, each cut to at most ``cap`` rows."""
    ref, win = matched_matrices(reference, window)
    return subsample_rows(ref, cap, rng), subsample_rows(win, cap, rng)


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """``(1 + #{null >= observed}) / (1 + len(null))``: valid at any number of draws.

    A relative tolerance counts rounding-level ties as ties, which errs conservative.
    """
    tolerance = 1e-9 * max(abs(observed), 1e-300)
    exceed = int(np.count_nonzero(null >= observed - tolerance))
    return (1 + exceed) / (1 + null.size)
