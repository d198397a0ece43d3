"""One window against one reference: run every enabled test on every field of its kind,
correct the p-values together, and explain the fields that drifted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.drift.base import DriftTest, Kind, TestResult
from detectors.drift.correction import Correction, adjust_p_values
from detectors.drift.explain import explain_categorical, explain_embedding_drift, explain_score
from detectors.drift.reference import ReferenceSnapshot
from detectors.errors import DetectorError


@dataclass(frozen=True)
class WindowData:
    """A window's samples by field name. ``texts[name]``, when given, is aligned with the
    rows of ``embeddings[name]`` and supplies example texts for explanations."""

    scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    categoricals: Mapping[str, Sequence[str]] = field(default_factory=dict)
    embeddings: Mapping[str, np.ndarray] = field(default_factory=dict)
    texts: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class TestOutcome:
    """A test's result on one field after the window's correction."""

    __test__ = False  # not a pytest test class

    test: str
    field: str
    kind: Kind
    result: TestResult
    adjusted_p_value: float | None
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistic": float(self.result.statistic),
            "p_value": self.result.p_value,
            "adjusted_p_value": self.adjusted_p_value,
            "drifted": self.drifted,
            "effect_size": self.result.effect_size,
            "test": self.test,
            "field": self.field,
            "kind": self.kind,
            "details": dict(self.result.details),
        }


@dataclass(frozen=True)
class DriftReport:
    """The window's verdict; ``tests`` is keyed ``"<test>:<field>"``.

    ``drifted`` is true when any p-value test is significant after correction or any
    threshold-only test fired (those vote outside the error control; docs/drift.md).
    """

    drifted: bool
    tests: Mapping[str, TestOutcome]
    reference: str
    explanation: Mapping[str, Any]
    alpha: float
    correction: Correction

    def to_dict(self) -> dict[str, Any]:
        """``{"drifted", "tests": {key: {...}}, "reference", "explanation"}``, JSON-ready."""
        return {
            "drifted": self.drifted,
            "tests": {key: outcome.to_dict() for key, outcome in self.tests.items()},
            "reference": self.reference,
            "explanation": dict(self.explanation),
        }


def _samples(
    kind: Kind, reference: ReferenceSnapshot, window: WindowData
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if kind == "continuous":
        return reference.scores, window.scores
    if kind == "categorical":
        counts = {k: Counter(map(str, v)) for k, v in window.categoricals.items()}
        return reference.categoricals, counts
    return reference.embeddings, window.embeddings


def run_drift_tests(
    reference: ReferenceSnapshot,
    window_data: WindowData,
    tests: Sequence[DriftTest],
    alpha: float = 0.05,
    correction: Correction = "bh",
    *,
    explain: bool = True,
    seed: int = 0,
) -> DriftReport:
    """Run each test on every field of its kind present in the window.

    A field missing from the reference, or a sample a test rejects (too few values), is
    listed under ``explanation["skipped"]`` instead of failing the window.
    """
    if not 0 < alpha < 1:
        raise DetectorError(f"alpha must be in (0, 1), got {alpha}")
    names = [t.name for t in tests]
    if len(set(names)) != len(names):
        raise DetectorError(f"test names must be unique, got {names}")

    results: dict[str, tuple[DriftTest, str, TestResult]] = {}
    skipped: dict[str, str] = {}
    for test in tests:
        ref_samples, win_samples = _samples(test.kind, reference, window_data)
        for field_name, window_sample in win_samples.items():
            key = f"{test.name}:{field_name}"
            if field_name not in ref_samples:
                skipped[key] = "field not in reference"
                continue
            try:
                results[key] = (test, field_name, test.test(ref_samples[field_name], window_sample))
            except DetectorError as exc:
                skipped[key] = str(exc)

    with_p = [k for k, (_, _, r) in results.items() if r.p_value is not None]
    q_values = adjust_p_values([results[k][2].p_value for k in with_p], correction)
    adjusted = dict(zip(with_p, q_values, strict=True))
    outcomes: dict[str, TestOutcome] = {}
    for key, (test, field_name, result) in results.items():
        q = float(adjusted[key]) if key in adjusted else None
        drifted = q <= alpha if q is not None else bool(result.drifted)
        outcomes[key] = TestOutcome(test.name, field_name, test.kind, result, q, drifted)

    explanation: dict[str, Any] = {}
    if explain:
        explanation = _explain(reference, window_data, outcomes.values(), alpha, seed)
    if skipped:
        explanation["skipped"] = skipped
    return DriftReport(
        drifted=any(o.drifted for o in outcomes.values()),
        tests=outcomes,
        reference=reference.id,
        explanation=explanation,
        alpha=alpha,
        correction=correction,
    )


def _explain(
    reference: ReferenceSnapshot,
    window: WindowData,
    outcomes: Iterable[TestOutcome],
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    """Explanations for each (kind, field) with a drifted test; one that cannot be computed
    says why instead of costing the window its verdict."""
    sections: dict[str, dict[str, Any]] = {}
    for kind, name in sorted({(o.kind, o.field) for o in outcomes if o.drifted}):
        try:
            text = _explain_field(reference, window, kind, name, alpha=alpha, seed=seed)
        except DetectorError as exc:
            text = {"error": str(exc)}
        sections.setdefault(_SECTIONS[kind], {})[name] = text
    return sections


_SECTIONS: dict[str, str] = {
    "continuous": "scores",
    "categorical": "categoricals",
    "embedding": "embeddings",
}


def _explain_field(
    reference: ReferenceSnapshot,
    window: WindowData,
    kind: Kind,
    name: str,
    *,
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    if kind == "continuous":
        return explain_score(reference.scores[name], window.scores[name])
    if kind == "categorical":
        counts = Counter(map(str, window.categoricals[name]))
        return explain_categorical(reference.categoricals[name], counts)
    return explain_embedding_drift(
        reference.embeddings[name],
        window.embeddings[name],
        window.texts.get(name),
        alpha=alpha,
        seed=seed,
    )
