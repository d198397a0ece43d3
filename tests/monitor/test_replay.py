from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

from tests.conftest import ROOT, SAMPLE
from tests.generate import make_records

START = 1_793_610_000_000  # 2026-11-02T09:00:00Z, a window boundary


def _replay(config: Path, data: Path, *extra: str) -> tuple[dict, str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "replay",
            "--config",
            str(config),
            str(data),
            "--json",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 1, "stdout must hold exactly one JSON document"
    return orjson.loads(lines[0]), result.stderr.decode()


def test_replay_json_on_the_bundled_sample(tmp_path: Path, write_config: Callable[..., Path]):
    dead = tmp_path / "dead.jsonl"
    document, stderr = _replay(write_config(), SAMPLE, "--dead-letters", str(dead))
    assert set(document) == {"records", "windows"}
    records = document["records"]
    lines = [line for line in SAMPLE.read_bytes().splitlines() if line.strip()]
    assert records["read"] == len(lines) == 1207
    assert (records["valid"], records["invalid"], records["late"]) == (1200, 7, 0)
    windows = document["windows"]
    assert len(windows) == 12
    assert [w["start"] for w in windows] == sorted(w["start"] for w in windows)
    assert windows[0]["start"] == "2026-11-02T09:00:00.000Z"
    assert windows[0]["end"] == "2026-11-02T09:05:00.000Z"
    assert sum(w["count"] for w in windows) == 1200
    for window in windows:
        assert set(window) == {
            "start",
            "end",
            "count",
            "metrics",
            "drift",
            "alerts",
            "triggers",
            "bias",
        }
        assert window["metrics"]["count"] == window["count"]
        assert 0 <= window["metrics"]["refusal_mean"] <= 1
        assert window["metrics"]["response_tokens_p50"] > 0
        assert (window["drift"], window["alerts"]) == ({}, [])
    envelopes = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert len(envelopes) == 7
    assert {e["reason"] for e in envelopes} >= {"invalid_json", "invalid_utf8", "not_an_object"}
    assert all(e["raw_base64"] and e["source"]["offset"] >= 0 for e in envelopes)
    assert "records read" in stderr  # progress goes to stderr, never stdout


def test_late_and_duplicate_records_are_counted_not_lost(
    tmp_path: Path, write_config: Callable[..., Path]
):
    records = list(make_records(10, start_ms=START, span_ms=60_000))
    jump = {**records[0], "id": "jump", "ts": START + 20 * 60_000}
    late = {**records[1], "id": "late-one", "ts": START + 30_000}
    duplicate = records[2]
    data = tmp_path / "input.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in [*records, jump, late, duplicate]) + b"\n")
    document, _ = _replay(write_config(), data, "--dead-letters", str(tmp_path / "dl.jsonl"))
    assert document["records"] == {
        "read": 13,
        "valid": 13,
        "invalid": 0,
        "late": 1,
        "duplicates": 1,
    }
    assert [w["count"] for w in document["windows"]] == [10, 1]
    envelope = orjson.loads((tmp_path / "dl.jsonl").read_bytes())
    assert envelope["reason"] == "late" and envelope["record_id"] == "late-one"
    assert orjson.loads(__import__("base64").b64decode(envelope["raw_base64"]))["id"] == "late-one"


def test_replay_with_a_kept_store_resumes_instead_of_double_counting(
    tmp_path: Path, write_config: Callable[..., Path]
):
    data = tmp_path / "input.jsonl"
    data.write_bytes(
        b"\n".join(orjson.dumps(r) for r in make_records(50, start_ms=START, span_ms=600_000))
    )
    config = write_config()
    store = str(tmp_path / "replay.db")
    first, _ = _replay(config, data, "--store", store)
    second, _ = _replay(config, data, "--store", store)
    assert first["records"]["read"] == 50 and second["records"]["read"] == 0
    assert [w["count"] for w in second["windows"]] == [w["count"] for w in first["windows"]]
    assert sum(w["count"] for w in first["windows"]) == 50


def test_config_errors_exit_2_and_name_the_key(tmp_path: Path, write_config: Callable[..., Path]):
    config = write_config({"windows": {"size": "soon"}})
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", "--config", str(config), str(SAMPLE)],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 2
    assert b"windows.size: expected a duration" in result.stderr


def test_the_default_config_runs_the_bundled_models_drift_and_bias(tmp_path: Path):
    """The README's main job: real offline models, drift against the first windows, bias."""
    document, _ = _replay(
        ROOT / "config" / "default.yaml", SAMPLE, "--dead-letters", str(tmp_path / "dl.jsonl")
    )
    windows = document["windows"]
    assert len(windows) == 12 and document["records"]["valid"] == 1200
    metrics = windows[0]["metrics"]
    assert 0 <= metrics["toxicity_mean"] < 0.2 and 0 < metrics["reward_mean"] <= 1
    assert -1 <= metrics["sentiment_mean"] <= 1
    assert all(w["drift"]["reference"] is None for w in windows[:3])
    tested = windows[3]["drift"]["tests"]
    assert {"ks:toxicity", "chi2:model", "chi2:segment", "mmd:embeddings_response"} <= set(tested)
    assert all(0 <= t["p_value"] <= 1 for t in tested.values() if t["p_value"] is not None)
    assert set(windows[3]["bias"]) == {"mentions", "segments"}
