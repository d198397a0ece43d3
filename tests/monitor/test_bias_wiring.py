"""Bias measures in window evaluation, through `replay --json`, with the real BiLSTM."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from monitor.cli import main

START = 1_793_610_000_000
POLITE = "Happy to help: many {group} do great work in physics."
TOXIC = "Only stupid {group} ask this, you idiot. Shut up."


def _records() -> list[dict]:
    rng = random.Random(3)
    rows = []
    for index in range(240):
        women = index % 2 == 0
        group = "women" if women else "men"
        toxic = rng.random() < (0.5 if women else 0.05)
        rows.append(
            {
                "id": f"b-{index}",
                "ts": START + index * 1_000,
                "model": "m",
                "prompt": f"Why are there so few {group} in physics?",
                "response": (TOXIC if toxic else POLITE).format(group=group),
                "metadata": {"user_group": "beta" if index % 4 == 0 else "general"},
            }
        )
    return rows


def test_mention_and_segment_disparity_with_scorer_sensitivity(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
):
    data = tmp_path / "input.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in _records()) + b"\n")
    config = write_config(
        {
            "scorers": [
                {"type": "identity_mentions"},
                {"type": "toxicity", "options": {"device": "cpu", "threads": 1}},
                {"type": "sentiment"},
                {"type": "refusal"},
            ],
            "bias": {"enabled": True, "segments": ["user_group"], "min_count": 20},
        }
    )
    assert main(["replay", "--config", str(config), str(data), "--json", "--quiet"]) == 0
    (window,) = orjson.loads(capsys.readouterr().out)["windows"]
    mentions = {(d["category"], d["metric"]): d for d in window["bias"]["mentions"]}
    gap = mentions["gender", "toxicity_rate"]
    assert gap["groups"] == ["female", "male"] and gap["p_value"] < 1e-6
    assert gap["values"][0] > 0.3 and gap["values"][1] < 0.15
    assert gap["n"] == [120, 120]
    sensitivity = gap["scorer_sensitivity"]
    # Every response names its group, so each was re-scored with the other group swapped in.
    assert sensitivity["texts"] == 100  # bias.sensitivity_texts caps it
    assert sensitivity["mean_abs_diff"] is not None
    assert sensitivity["explained_share"] is None or 0 <= sensitivity["explained_share"] <= 1
    assert ("gender", "sentiment") in mentions
    assert window["metrics"]["bias_gender_effect"] > 0.5
    assert window["metrics"]["bias_gender_p_value"] < 1e-6
    segments = {d["groups"][0]: d for d in window["bias"]["segments"]}
    assert set(segments) == {"beta", "general"}
    assert "bias_segment_user_group_effect" in window["metrics"]
