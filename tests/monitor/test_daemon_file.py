"""The daemon as a real process on a file source: signals, crashes, metrics."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson

from tests.daemon_process import DaemonProcess, stored_records, window_counts
from tests.generate import make_records
from tests.net import free_port

START = 1_793_610_000_000


def _write_records(path: Path, count: int, *, prefix: str = "rec", start: int = START) -> None:
    lines = [
        orjson.dumps(r)
        for r in make_records(count, start_ms=start, span_ms=count * 1_000, prefix=prefix)
    ]
    with path.open("ab") as handle:
        handle.write(b"\n".join(lines) + b"\n")


def test_sigterm_drains_commits_and_exits_zero(tmp_path: Path, write_config: Callable[..., Path]):
    data = tmp_path / "input.jsonl"
    _write_records(data, 200)
    config = write_config({"source": {"file": {"follow": True, "poll_interval": "50ms"}}})
    daemon = DaemonProcess(config)
    db = tmp_path / "store.db"
    daemon.wait_for(lambda: stored_records(db) == 200, 30, "the first 200 records")
    _write_records(data, 100, prefix="more", start=START + 200_000)
    daemon.wait_for(lambda: stored_records(db) == 300, 30, "the appended records")
    assert daemon.stop(timeout=20) == 0, daemon.log_tail()


def test_sigkill_and_restart_gives_the_uninterrupted_counts(
    tmp_path: Path, write_config: Callable[..., Path]
):
    data = tmp_path / "input.jsonl"
    _write_records(data, 20_000)
    config = write_config({"batch": {"max_size": 20, "max_wait": "10ms"}})
    db = tmp_path / "store.db"
    daemon = DaemonProcess(config)
    daemon.wait_for(lambda: stored_records(db) >= 2_000, 60, "a part of the input")
    daemon.kill()
    partial = stored_records(db)
    assert 0 < partial < 20_000, "the kill must land mid-run"
    restarted = DaemonProcess(config)
    assert restarted.wait(timeout=120) == 0, restarted.log_tail()

    reference_config = write_config(
        {"store": {"path": "reference.db"}, "dead_letter": {"path": "ref-dead.jsonl"}},
        name="reference.yaml",
    )
    reference = DaemonProcess(reference_config)
    assert reference.wait(timeout=120) == 0, reference.log_tail()
    expected = window_counts(tmp_path / "reference.db")
    assert sum(expected.values()) == 20_000
    assert window_counts(db) == expected


def test_metrics_endpoint_exports_the_pipeline(tmp_path: Path, write_config: Callable[..., Path]):
    data = tmp_path / "input.jsonl"
    _write_records(data, 50)
    data.open("ab").write(b"{broken\n")
    port = free_port()
    config = write_config(
        {
            "source": {"file": {"follow": True, "poll_interval": "50ms"}},
            "metrics": {"port": port},
            "windows": {"size": "10s", "allowed_lateness": "0s"},
        }
    )
    daemon = DaemonProcess(config)
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> str:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            return ""

    try:
        daemon.wait_for(
            lambda: "alignwatch_windows_evaluated_total 4.0" in scrape(), 30, "evaluations"
        )
        text = scrape()
    finally:
        daemon.stop()
    assert "alignwatch_records_consumed_total 51.0" in text
    assert 'alignwatch_records_invalid_total{reason="invalid_json"} 1.0' in text
    assert "alignwatch_records_scored_total 50.0" in text
    assert 'alignwatch_scorer_duration_seconds_count{scorer="refusal"}' in text
    assert "alignwatch_batch_duration_seconds_bucket" in text
    assert 'alignwatch_window_metric{metric="count"}' in text
    assert "alignwatch_watermark_timestamp_seconds" in text


def test_sigterm_mid_run_persists_what_it_read_and_a_restart_finishes(
    tmp_path: Path, write_config: Callable[..., Path]
):
    data = tmp_path / "input.jsonl"
    _write_records(data, 20_000)
    config = write_config({"batch": {"max_size": 20, "max_wait": "10ms"}})
    db = tmp_path / "store.db"
    daemon = DaemonProcess(config)
    daemon.wait_for(lambda: stored_records(db) >= 2_000, 60, "a part of the input")
    assert daemon.stop(timeout=20) == 0, daemon.log_tail()
    assert 0 < stored_records(db) < 20_000, "the stop must land mid-run"
    restarted = DaemonProcess(config)
    assert restarted.wait(timeout=120) == 0, restarted.log_tail()
    assert stored_records(db) == 20_000
