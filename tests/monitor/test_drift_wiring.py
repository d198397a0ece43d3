"""Drift tests wired into window evaluation, through `replay --json`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from detectors import scorers
from monitor.cli import main
from tests.generate import make_records

START = 1_793_610_000_000
WINDOW = 300_000


def _write(path: Path, windows: int, per_window: int, shifted_from: int, shift: Callable) -> None:
    lines = []
    for index in range(windows):
        for record in make_records(
            per_window,
            start_ms=START + index * WINDOW,
            span_ms=WINDOW - 1_000,
            seed=index,
            prefix=f"w{index}",
        ):
            lines.append(orjson.dumps(shift(record) if index >= shifted_from else record))
    path.write_bytes(b"\n".join(lines) + b"\n")


def _replay(config: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert main(["replay", "--config", str(config), str(data), "--json", "--quiet"]) == 0
    return orjson.loads(capsys.readouterr().out)["windows"]


def test_score_drift_against_the_first_windows(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
):
    def longer(record: dict) -> dict:
        return {**record, "response": record["response"] + " Let me add a lot more detail." * 4}

    data = tmp_path / "input.jsonl"
    _write(data, windows=6, per_window=150, shifted_from=4, shift=longer)
    config = write_config(
        {
            "drift": {
                "enabled": True,
                "reference": {"mode": "first_windows", "windows": 2},
                "tests": [{"type": "ks"}, {"type": "chi2"}],
                "categoricals": ["model", "segment"],
            }
        }
    )
    windows = _replay(config, data, capsys)
    assert len(windows) == 6
    first, second, *tested = (w["drift"] for w in windows)
    assert first["reference"] is None and "not_tested" in first["explanation"]
    assert second["reference"] is None
    reference_ids = {d["reference"] for d in tested}
    assert len(reference_ids) == 1 and None not in reference_ids
    assert [d["drifted"] for d in tested] == [False, False, True, True]
    shifted = tested[2]["tests"]["ks:response_tokens"]
    assert shifted["drifted"] and shifted["adjusted_p_value"] < 0.001
    assert set(tested[0]["tests"]) >= {"ks:response_tokens", "chi2:model", "chi2:segment"}
    assert "response_tokens" in tested[2]["explanation"]["scores"]


def test_embedding_drift_names_the_new_topic(
    tmp_path: Path,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setitem(scorers.SCORERS, "prompt_vectors", "tests.fakes:PromptVectors")

    def new_topic(record: dict) -> dict:
        if int(record["id"].rsplit("-", 1)[1]) % 3:
            return record
        return {**record, "prompt": "Please explain quantum tunnelling to me."}

    data = tmp_path / "input.jsonl"
    _write(data, windows=4, per_window=150, shifted_from=3, shift=new_topic)
    config = write_config(
        {
            "scorers": [{"type": "response_tokens"}, {"type": "prompt_vectors"}],
            "drift": {
                "enabled": True,
                "reference": {"mode": "rolling", "windows": 2},
                "tests": [{"type": "mmd", "options": {"permutations": 200}}],
            },
        }
    )
    windows = _replay(config, data, capsys)
    third, fourth = windows[2]["drift"], windows[3]["drift"]
    assert not third["drifted"] and third["tests"]["mmd:prompt_vectors_prompt"]["p_value"] > 0.01
    assert fourth["drifted"]
    assert third["reference"] != fourth["reference"]  # rolling: each window its own reference
    explanation = fourth["explanation"]["embeddings"]["prompt_vectors_prompt"]
    assert "quantum tunnelling" in orjson.dumps(explanation).decode()


def test_baseline_build_then_windows_compare_with_it(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
):
    baseline = tmp_path / "baseline.jsonl"
    _write(baseline, windows=2, per_window=200, shifted_from=99, shift=lambda r: r)
    config = write_config(
        {
            "drift": {
                "enabled": True,
                "reference": {"mode": "baseline", "baseline": "baseline.npz"},
                "tests": [{"type": "ks"}],
                "min_count": 20,
            }
        }
    )
    data = tmp_path / "input.jsonl"
    _write(data, windows=2, per_window=100, shifted_from=99, shift=lambda r: r)
    untested = _replay(config, data, capsys)
    assert "no baseline file" in untested[0]["drift"]["explanation"]["not_tested"]

    assert main(["baseline", "build", "--config", str(config), str(baseline), "--quiet"]) == 0
    built = capsys.readouterr().out
    assert "400 records" in built
    reference_id = built.split()[1].rstrip(":")

    for window in _replay(config, data, capsys):
        assert window["drift"]["reference"] == reference_id
        assert set(window["drift"]["tests"]) == {"ks:response_tokens", "ks:refusal"}


def test_html_report_and_p_value_gauges(tmp_path: Path, write_config: Callable[..., Path]):
    from prometheus_client import CollectorRegistry

    from monitor.config import load_config
    from monitor.daemon import Daemon

    data = tmp_path / "input.jsonl"
    _write(data, windows=3, per_window=100, shifted_from=99, shift=lambda r: r)
    config = load_config(
        write_config(
            {
                "source": {"file": {"path": str(data)}},
                "drift": {
                    "enabled": True,
                    "reference": {"mode": "first_windows", "windows": 1},
                    "tests": [{"type": "ks"}],
                    "html_report": True,
                },
            }
        )
    )
    registry = CollectorRegistry()
    daemon = Daemon(config, registry=registry, scheduled=False, serve_metrics=False)
    assert daemon.run() == 0
    report = Path(daemon.final_results[-1][1]["drift"]["report"])
    assert report.parent == tmp_path / "reports" and report.stat().st_size > 10_000
    assert "<html" in report.read_text()[:2000].lower()
    p_value = registry.get_sample_value("alignwatch_drift_p_value", {"test": "ks:response_tokens"})
    assert p_value is not None and 0 <= p_value <= 1
    assert registry.get_sample_value("alignwatch_drift_detected") in (0.0, 1.0)
