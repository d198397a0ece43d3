"""Retraining triggers: cooldown, dataset export, signed webhook."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import orjson
import pandas as pd
import pytest

from monitor.alerting.export import export_dataset, notable
from monitor.cli import main
from monitor.config import ExportConfig
from monitor.records import Position, Record
from monitor.store import BatchWrite, ScoredRecord
from monitor.store.sqlite import SQLiteStore
from monitor.windows import Window
from tests.conftest import SAMPLE
from tests.receivers import Receiver

SECRET = "trigger-secret"


def test_trigger_fires_with_cooldown_exports_and_signs(
    tmp_path: Path,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with Receiver(fail_first=2).running() as hook:
        config = write_config(
            {
                "source": {"file": {"path": str(SAMPLE)}},
                "triggers": {
                    "rules": [
                        {
                            "name": "refusals",
                            "metric": "refusal_mean",
                            "op": ">",
                            "threshold": 0.05,
                            "for": 2,
                        }
                    ],
                    "cooldown": "15m",
                    "sinks": [
                        {
                            "name": "retrain",
                            "type": "webhook",
                            "url": hook.url,
                            "secret_env": "HOOK_SECRET",
                        }
                    ],
                    "export": {
                        "directory": "exports",
                        "score_above": {"refusal": 0.5},
                        "windows": 2,
                    },
                },
                "alerts": {"delivery": {"initial_backoff": "50ms", "poll_interval": "50ms"}},
            }
        )
        assert (
            main(
                [
                    "replay",
                    "--config",
                    str(config),
                    str(SAMPLE),
                    "--json",
                    "--quiet",
                    "--deliver",
                    "--deliver-timeout",
                    "20",
                ]
            )
            == 0
        )
        windows = orjson.loads(capsys.readouterr().out)["windows"]
    fired = [(i, t) for i, w in enumerate(windows) for t in w["triggers"]]
    assert fired, "the sample's refusal rate must trigger at least once"
    positions = [i for i, _ in fired]
    assert all(b - a >= 3 for a, b in itertools.pairwise(positions)), positions
    index, trigger = fired[0]
    assert trigger["rows"] > 0 and Path(trigger["path"]).parent == tmp_path / "exports"
    rows = [orjson.loads(line) for line in Path(trigger["path"]).read_bytes().splitlines()]
    assert len(rows) == trigger["rows"]
    assert all(r["reasons"] == ["refusal>0.5"] for r in rows)
    assert all(any(w in r["response"].lower() for w in ("sorry", "cannot")) for r in rows)
    assert {r["window_start_ms"] for r in rows} <= {
        w for w in (_ms(windows[index]["start"]), _ms(windows[index - 1]["start"]))
    }
    assert len(pd.read_parquet(trigger["parquet_path"])) == trigger["rows"]

    assert len(hook.received) == len(fired)
    for request in hook.received:
        assert request.signed_with(SECRET)
    message = orjson.loads(hook.received[0].body)
    assert message["kind"] == "trigger" and message["id"] == trigger["id"]
    event = message["event"]
    assert event["reasons"][0]["rule"] == "refusals" and len(event["windows"]) == 2
    assert event["export"]["rows"] == trigger["rows"] and "refusal_mean" in event["metrics"]


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_export_includes_human_flagged_records(tmp_path: Path):
    store = SQLiteStore(tmp_path / "s.db")
    config = ExportConfig(directory=tmp_path / "out", score_above={"toxicity": 0.5})
    keep = notable(config)
    window = Window(0, 300_000)
    items = []
    for index, toxicity in enumerate([0.9, 0.1, 0.2]):
        record = Record(
            f"r{index}",
            1_000 + index,
            "m",
            f"prompt {index}",
            f"response {index}",
            Position("f", index),
        )
        scores = {"toxicity": toxicity}
        items.append(ScoredRecord(record, window, scores, {}, keep(scores) or index == 1))
    store.write_batch(BatchWrite(items, [], [], {}, {}, None))
    store.add_feedback("r1", "harmful", None, "ann")
    store.add_feedback("r2", "ok", None, "ann")
    result = export_dataset(store, config, "trigger:1:x", [0], [])
    rows = [orjson.loads(line) for line in Path(result["path"]).read_bytes().splitlines()]
    assert {r["id"]: r["reasons"] for r in rows} == {
        "r0": ["toxicity>0.5"],
        "r1": ["human:harmful"],
    }
    assert rows[0]["response"] == "response 0"
