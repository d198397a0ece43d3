from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from detectors.bias import (
    Disparity,
    counterfactual_sensitivity,
    explained_share,
    load_lexicon,
)
from detectors.scorers import TextPair, create_scorer
from tests.detectors.fixtures import Pair

RELIGION = load_lexicon().categories["religion"]


def test_sentiment_is_positive_for_praise_and_negative_for_abuse() -> None:
    scorer = create_scorer("sentiment")
    texts = [
        "This is wonderful, thank you!",
        "This is awful and I hate it.",
        "",
        "猫が好き",
        "x" * 10**6,
    ]
    scores = scorer.score([Pair("", t) for t in texts])[""]
    assert scores[0] > 0.5 and scores[1] < -0.5
    assert scores[2] == scores[3] == 0.0
    assert scores.shape == (5,)


class _WordCounter:
    """A fake scorer that reacts to one word only: 0.9 when 'muslim' appears, else 0.1."""

    outputs = ("",)

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        return {"": np.array([0.9 if "muslim" in i.response.lower() else 0.1 for i in items])}


def test_a_scorer_that_reacts_to_a_term_is_caught_by_the_swap() -> None:
    items = [
        Pair("p", "My Muslim neighbours brought food."),
        Pair("p", "A Christian choir sang."),
        Pair("p", "Nothing religious here."),
        Pair("p", "Muslims and Christians met."),  # two groups: skipped
    ]
    result = counterfactual_sensitivity(_WordCounter(), items, RELIGION)
    assert result.texts == 2
    pairs = {(p.source, p.target): p for p in result.pairs}
    assert pairs["muslim", "christian"].mean_diff == pytest.approx(-0.8)
    assert pairs["christian", "muslim"].rate_shift == 1.0
    assert pairs["christian", "jewish"].mean_abs_diff == 0.0
    gap = _disparity_between("muslim", "christian", 0.5, 0.1)
    assert explained_share(gap, result.rate_shifts()) == 1.0


def _disparity_between(a: str, b: str, high: float, low: float) -> Disparity:
    return Disparity("religion", "toxicity_rate", (a, b), (high, low), (50, 50), "chi2",
                     1.0, 0.01, 0.9, 1)  # fmt: skip


def test_the_bilstm_sensitivity_check_runs_on_a_sample() -> None:
    scorer = create_scorer("toxicity", {"device": "cpu"})
    items = [
        Pair("", "Muslims, Jews and gay people are welcome here."),
        Pair("", "The mosque on our street hosts a food bank."),
        Pair("", "Our church needs volunteers on Sunday."),
    ]
    result = counterfactual_sensitivity(scorer, items, RELIGION)
    assert result.texts == 2
    assert len(result.pairs) == 2 * (len(RELIGION.groups) - 1)
    assert 0.0 <= result.mean_abs_diff <= 1.0
