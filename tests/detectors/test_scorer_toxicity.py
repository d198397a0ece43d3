from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from detectors.errors import DetectorError
from detectors.scorers import create_scorer
from detectors.scorers.torch import bilstm
from detectors.scorers.torch.toxicity import Toxicity
from tests.detectors.fixtures import Pair, tiny_models

EXPECTED = Path(__file__).parent / "fixtures" / "bilstm_expected.json"

POLITE = "Thank you so much for your help, have a wonderful day!"
TOXIC = "You are a stupid idiot and everyone hates you."


@pytest.fixture(scope="module")
def jigsaw() -> Toxicity:
    return Toxicity(device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.bert(
        tmp_path_factory.mktemp("cls"),
        num_labels=3,
        labels=["Toxic", "insult", "threat"],
        problem_type="multi_label_classification",
    )


def test_port_reproduces_the_keras_original(jigsaw: Toxicity) -> None:
    # Expected probabilities were produced by the original Keras model, TensorFlow 2.21 CPU
    # (toxic_classifier.ToxicCommentClassifier().classify), by
    # tests/detectors/fixtures/bilstm_reference.py; its docstring has the exact commands.
    rows = json.loads(EXPECTED.read_text(encoding="utf-8"))["rows"]
    expected = np.array([[r["probabilities"][label] for label in bilstm.LABELS] for r in rows])
    got = jigsaw.probabilities([r["text"] for r in rows])
    assert np.abs(got - expected).max() < 1e-6


def test_toxic_scores_high_and_polite_low_with_the_aggregate_first(jigsaw: Toxicity) -> None:
    assert jigsaw.outputs == ("", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
    scores = jigsaw.score([Pair("hi", POLITE), Pair("hi", TOXIC)])
    assert scores[""][0] < 0.1
    assert scores[""][1] > 0.9
    assert scores["insult"][1] > scores["insult"][0]


def test_empty_non_english_and_huge_texts_score_in_range(jigsaw: Toxicity) -> None:
    truncated = jigsaw.stats.truncated
    texts = ["", "   ", "Die Katze schläft. 猫が好きです", "مرحبا بالعالم", "word " * 200_000]
    scores = jigsaw.score([Pair("", t) for t in texts])[""]
    assert scores.shape == (5,)
    assert np.all((scores >= 0) & (scores <= 1))
    assert jigsaw.stats.truncated == truncated + 1


def test_the_prompt_is_scored_on_request() -> None:
    scorer = create_scorer("toxicity", {"prompt": True, "device": "cpu"})
    assert scorer.outputs[-1] == "prompt"
    scores = scorer.score([Pair(TOXIC, POLITE)])
    assert scores["prompt"][0] > 0.9
    assert scores[""][0] < 0.1


def test_scorers_on_one_backbone_share_it(jigsaw: Toxicity) -> None:
    other = Toxicity(device="cpu", prompt=True)
    assert other._backend.jigsaw is jigsaw._backend.jigsaw  # type: ignore[attr-defined]


def test_a_classifier_takes_label_names_from_its_config(classifier_dir: Path) -> None:
    scorer = Toxicity(model=str(classifier_dir), device="cpu")
    assert scorer.labels == ("toxic", "insult", "threat")
    assert scorer.outputs == ("", "insult", "threat")
    by_max = Toxicity(model=str(classifier_dir), device="cpu", aggregate="max")
    assert by_max.outputs == ("", "toxic", "insult", "threat")
    items = [Pair("", POLITE), Pair("", TOXIC)]
    probabilities = by_max.probabilities([i.response for i in items])
    np.testing.assert_allclose(by_max.score(items)[""], probabilities.max(axis=1))
    softmax = Toxicity(model=str(classifier_dir), device="cpu", activation="softmax")
    np.testing.assert_allclose(softmax.probabilities([POLITE]).sum(), 1.0, rtol=1e-5)


def test_bucketed_batches_match_one_text_at_a_time(classifier_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [TOXIC * k for k in (3, 1, 0, 5, 2, 1, 4)] + ["日本語のテキスト", "x " * 5000]
    scorer = Toxicity(model=str(classifier_dir), device="cpu", batch_size=3, max_length=64)
    got = scorer.probabilities(texts)
    tokenizer = AutoTokenizer.from_pretrained(classifier_dir)
    model = AutoModelForSequenceClassification.from_pretrained(classifier_dir).eval()
    with torch.inference_mode():
        for text, row in zip(texts, got, strict=True):
            encoded = tokenizer(text, truncation=True, max_length=64, return_tensors="pt")
            np.testing.assert_allclose(row, model(**encoded).logits.sigmoid()[0], atol=1e-5)
    assert scorer.stats.truncated == sum(len(tokenizer(t).input_ids) > 64 for t in texts) > 0


def test_bad_options_fail_at_start_up_naming_the_option(classifier_dir: Path) -> None:
    with pytest.raises(DetectorError, match="max_length=500"):
        Toxicity(model=str(classifier_dir), device="cpu", max_length=500)
    with pytest.raises(DetectorError, match="aggregate='auto'"):
        create_scorer(
            "toxicity", {"model": str(tiny_models.bert(classifier_dir / "x", num_labels=2))}
        )
    with pytest.raises(DetectorError, match=r"model='/no/such/model'"):
        create_scorer("toxicity", {"model": "/no/such/model"})
    with pytest.raises(DetectorError, match="device"):
        create_scorer("toxicity", {"device": "gpu"})


def test_a_hub_id_without_network_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DetectorError, match="model='unitary/toxic-bert': cannot load it"):
        create_scorer("toxicity", {"model": "unitary/toxic-bert"})
