"""run_drift_tests: the report's shape, the correction across tests, explanations, skips;
and the Evidently HTML report the daemon writes per window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from detectors.drift import (
    WindowData,
    build_reference,
    create_drift_test,
    run_drift_tests,
)
from detectors.drift.evidently_report import write_evidently_report
from detectors.errors import DetectorError

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:evidently.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litestar.*"),
]


def _reference(rng: np.random.Generator):
    return build_reference(
        scores={"toxicity": rng.normal(size=1000), "tokens": rng.poisson(50, 1000)},
        categoricals={"model": rng.choice(["a", "b", "c"], 1000, p=[0.5, 0.3, 0.2])},
        embeddings={"prompt": rng.normal(size=(600, 8))},
    )


def _window(rng: np.random.Generator, shift: float = 0.0) -> WindowData:
    prompt = rng.normal(size=(300, 8))
    prompt[:60] += 3 * shift
    return WindowData(
        scores={"toxicity": rng.normal(shift, 1.0, 300), "tokens": rng.poisson(50, 300)},
        categoricals={"model": list(rng.choice(["a", "b", "c"], 300, p=[0.5, 0.3, 0.2]))},
        embeddings={"prompt": prompt},
        texts={"prompt": [f"{'new' if i < 60 and shift else 'old'} {i}" for i in range(300)]},
    )


def _tests(*names: str):
    fast = {"mmd": {"permutations": 199}, "wasserstein": {"permutations": 199}}
    return [create_drift_test(name, fast.get(name)) for name in names]


def test_report_has_the_promised_shape_and_is_json_ready() -> None:
    rng = np.random.default_rng(0)
    reference = _reference(rng)
    tests = _tests("ks", "wasserstein", "psi", "chi2", "mmd")
    report = run_drift_tests(reference, _window(rng, shift=1.0), tests, alpha=0.01)
    payload = json.loads(json.dumps(report.to_dict()))
    assert set(payload) == {"drifted", "tests", "reference", "explanation"}
    assert payload["reference"] == reference.id
    assert set(payload["tests"]) == {
        "ks:toxicity", "ks:tokens", "wasserstein:toxicity", "wasserstein:tokens",
        "psi:toxicity", "psi:tokens", "chi2:model", "mmd:prompt",
    }  # fmt: skip
    for entry in payload["tests"].values():
        assert {"statistic", "p_value", "adjusted_p_value", "drifted"} <= set(entry)
    assert payload["tests"]["psi:toxicity"]["adjusted_p_value"] is None
    assert payload["drifted"] is True
    assert payload["tests"]["mmd:prompt"]["drifted"] is True
    assert payload["tests"]["ks:tokens"]["drifted"] is False
    toxicity = payload["explanation"]["scores"]["toxicity"]
    assert toxicity["window"]["mean"] > toxicity["reference"]["mean"] + 0.5
    prompt = payload["explanation"]["embeddings"]["prompt"]
    assert prompt["clusters"][0]["direction"] == "grew"
    assert all(text.startswith("new") for text in prompt["clusters"][0]["examples"])


@pytest.mark.parametrize("correction", ["bh", "bonferroni"])
def test_more_tests_do_not_raise_the_window_false_alarm_rate(correction: str) -> None:
    """Ten independent null scores, two tests each: 20 p-values per window. Uncorrected,
    about 64% of windows would alarm; corrected, at most alpha."""
    names = [f"s{i}" for i in range(10)]
    tests = _tests("ks", "wasserstein")
    alarms = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        reference = build_reference({n: rng.normal(size=200) for n in names}, {})
        window = WindowData(scores={n: rng.normal(size=100) for n in names})
        report = run_drift_tests(reference, window, tests, 0.05, correction, explain=False)
        alarms += report.drifted
    assert stats.binom.sf(alarms - 1, 100, 0.05) >= 0.001, f"{alarms}/100 windows alarmed"


def test_adjusted_p_values_are_the_correction_of_the_raw_ones() -> None:
    rng = np.random.default_rng(1)
    report = run_drift_tests(_reference(rng), _window(rng, 0.3), _tests("ks"), 0.05, "bonferroni")
    for outcome in report.tests.values():
        assert outcome.adjusted_p_value == pytest.approx(min(1.0, 2 * outcome.result.p_value))


def test_missing_reference_fields_and_tiny_samples_are_skipped_not_fatal() -> None:
    rng = np.random.default_rng(2)
    reference = build_reference({"toxicity": rng.normal(size=100)}, {})
    window = WindowData(scores={"toxicity": np.array([0.1]), "brand_new": rng.normal(size=50)})
    report = run_drift_tests(reference, window, _tests("ks"))
    assert report.tests == {}
    assert report.drifted is False
    skipped = report.explanation["skipped"]
    assert skipped["ks:brand_new"] == "field not in reference"
    assert "finite values" in skipped["ks:toxicity"]


def test_bad_arguments_are_detector_errors() -> None:
    rng = np.random.default_rng(3)
    reference, window = _reference(rng), _window(rng)
    with pytest.raises(DetectorError, match="unique"):
        run_drift_tests(reference, window, _tests("ks", "ks"))
    with pytest.raises(DetectorError, match="alpha"):
        run_drift_tests(reference, window, _tests("ks"), alpha=1.5)
    with pytest.raises(DetectorError, match="unknown drift test"):
        create_drift_test("nope")


def test_evidently_report_is_written_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    reference = {"toxicity": rng.normal(size=300), "tokens": rng.poisson(50, 200)}
    current = {"toxicity": rng.normal(1.0, 1.0, 100), "tokens": rng.poisson(50, 100)}
    target = write_evidently_report(reference, current, tmp_path / "window-1.html")
    html = target.read_text(encoding="utf-8")
    assert html.lstrip().startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "toxicity" in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["window-1.html"]


def test_a_failing_explanation_keeps_the_verdict() -> None:
    rng = np.random.default_rng(5)
    window = _window(rng, shift=1.0)
    misaligned = WindowData(embeddings=window.embeddings, texts={"prompt": ["too few"]})
    report = run_drift_tests(_reference(rng), misaligned, _tests("mmd"))
    assert report.drifted is True
    assert "texts" in report.explanation["embeddings"]["prompt"]["error"]
