"""Every model scorer honours the Scorer contract on awkward batches."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import subprocess
import sys
from functools import cache

import numpy as np
import pytest

from detectors.scorers import Scorer, create_scorer
from tests.detectors.fixtures import Pair

NAMES = ["toxicity", "reward", "embeddings", "sentiment", "identity_mentions"]
TORCH_OPTIONS = {"device": "cpu", "batch_size": 3}

BATCH = [
    Pair("Tell me about Muslim women", "They are people like everyone else."),
    Pair("", ""),
    Pair("¿Dónde está la biblioteca?", "La biblioteca está cerca. 😀"),
    Pair("hi", "word " * 100_000),
    Pair("You idiot", "Please stay calm, I am here to help."),
]


@cache
def _scorer(name: str) -> Scorer:
    options = TORCH_OPTIONS if name in {"toxicity", "reward", "embeddings"} else {}
    return create_scorer(name, options)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_aligned_with_the_batch_and_keep_its_order(name: str) -> None:
    scorer = _scorer(name)
    assert isinstance(scorer, Scorer)
    scores = scorer.score(BATCH)
    assert set(scores) == set(scorer.outputs)
    reversed_scores = scorer.score(BATCH[::-1])
    for output in scorer.outputs:
        values = np.asarray(scores[output])
        assert values.shape[0] == len(BATCH) and values.ndim in (1, 2)
        assert np.isfinite(values).all()
        np.testing.assert_allclose(np.asarray(reversed_scores[output])[::-1], values, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_batch_gives_empty_outputs(name: str) -> None:
    scorer = _scorer(name)
    scores = scorer.score([])
    assert all(np.asarray(scores[o]).shape[0] == 0 for o in scorer.outputs)


def test_importing_the_registry_and_light_scorers_does_not_import_torch() -> None:
    code = (
        "import sys; from detectors.scorers import create_scorer;"
        "create_scorer('sentiment'); create_scorer('identity_mentions');"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_scorer_type_may_be_an_import_string_for_plugins() -> None:
    scorer = create_scorer("tests.fakes:SlowTokens", {"seconds_per_batch": 0.0})
    scores = scorer.score([Pair("q", "four"), Pair("q", "")])
    assert scores[""].tolist() == [4.0, 0.0]


@pytest.mark.parametrize(
    ("type_name", "message"),
    [("tests.fakes:Missing", "has no attribute"), ("no_such_pkg:Scorer", "cannot import")],
)
def test_a_bad_import_string_names_what_is_wrong(type_name: str, message: str) -> None:
    from detectors.errors import DetectorError

    with pytest.raises(DetectorError, match=message):
        create_scorer(type_name)
