from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from detectors.scorers import create_scorer
from detectors.scorers.torch.cache import MODELS
from detectors.scorers.torch.embeddings import Embeddings, default_embedder
from tests.detectors.fixtures import Pair

TEXTS = [
    "How do I reset my password?",
    "I forgot my password and need to change it.",
    "The recipe needs two eggs and some flour.",
    "",
    "Wie setze ich mein Passwort zurück?",
    "password " * 3000,
]


@pytest.fixture(scope="module")
def embedder() -> Embeddings:
    return Embeddings(device="cpu", batch_size=2)


def test_unit_vectors_in_order_with_related_texts_closest(embedder: Embeddings) -> None:
    scores = embedder.score([Pair(t, t[::-1]) for t in TEXTS])
    assert embedder.outputs == ("prompt", "response")
    prompts = scores["prompt"]
    assert prompts.shape == scores["response"].shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(prompts, axis=1), 1.0, rtol=1e-5)
    similarity = prompts @ prompts.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    assert embedder.stats.truncated == 2  # the long text, as prompt and reversed


def test_matches_a_plain_mean_pooled_forward_one_text_at_a_time(embedder: Embeddings) -> None:
    from transformers import AutoModel, AutoTokenizer

    path = default_embedder()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    got = embedder.embed(TEXTS)
    with torch.inference_mode():
        for text, row in zip(TEXTS, got, strict=True):
            encoded = tokenizer(text, truncation=True, max_length=256, return_tensors="pt")
            mean = model(**encoded).last_hidden_state[0].mean(dim=0)
            np.testing.assert_allclose(row, (mean / mean.norm()).numpy(), atol=2e-5)


def test_scorers_sharing_the_embedder_load_it_once(embedder: Embeddings) -> None:
    loads = MODELS.loads
    again = create_scorer("embeddings", {"device": "cpu"})
    assert MODELS.loads == loads
    proxy = create_scorer("reward", {"device": "cpu"})  # embedder and BiLSTM, both shared
    toxicity = create_scorer("toxicity", {"device": "cpu"})
    assert MODELS.loads <= loads + 1  # the BiLSTM, unless another scorer holds it already
    backbone = embedder._text.backbone
    assert again._text.backbone is backbone  # type: ignore[attr-defined]
    assert proxy._embeddings._text.backbone is backbone  # type: ignore[attr-defined]
    assert proxy._toxicity._backend.jigsaw is toxicity._backend.jigsaw  # type: ignore[attr-defined]
