from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pytest
import torch

from detectors.errors import DetectorError
from detectors.scorers import create_scorer
from detectors.scorers.torch.reward import RewardModel, RewardProxy
from tests.detectors.fixtures import Pair, tiny_models

ITEMS = [
    Pair("please explain how vaccines work", "vaccines train the immune system " * 3),
    Pair("", ""),
    Pair("write a haiku about autumn", "leaves falling"),
    Pair("hi", "you are a stupid idiot " * 60),
    Pair("日本語で答えて", "はい、わかりました 😀"),
]


MAX_LENGTH = 128  # the tiny models' positions


def _one_at_a_time(folder: Path, chat: bool) -> np.ndarray:
    """The reference: each pair alone, so no padding at all; over-long chats keep their
    tail, over-long pairs are cut by the tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.eos_token_id
    rewards = []
    with torch.inference_mode():
        for item in ITEMS:
            if chat:
                messages = [
                    {"role": "user", "content": item.prompt},
                    {"role": "assistant", "content": item.response},
                ]
                text = tokenizer.apply_chat_template(messages, tokenize=False)
                ids = tokenizer(text, add_special_tokens=False).input_ids[-MAX_LENGTH:]
                encoded = {"input_ids": torch.tensor([ids], dtype=torch.long)}
            else:
                # A batch of one: a single call drops an empty text_pair, a batch keeps it.
                encoded = tokenizer(
                    [item.prompt],
                    [item.response],
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
            if encoded["input_ids"].shape[1] == 0:
                encoded = {"input_ids": torch.tensor([[tokenizer.eos_token_id]])}
            rewards.append(float(model(**encoded).logits[0, 0]))
    return np.array(rewards)


@pytest.mark.parametrize(
    ("kind", "chat"), [("bert", False), ("gpt2", True), ("gpt2", False)], ids=str
)
def test_a_reward_model_scores_batched_pairs_as_it_scores_each_alone(
    tmp_path: Path, kind: str, chat: bool
) -> None:
    folder = (
        tiny_models.bert(tmp_path, num_labels=1)
        if kind == "bert"
        else tiny_models.gpt2_reward(tmp_path, chat_template=chat)
    )
    scorer = create_scorer("reward", {"model": str(folder), "device": "cpu", "batch_size": 2})
    assert isinstance(scorer, RewardModel)
    assert scorer.chat_template is chat
    assert scorer.outputs == ("",)
    np.testing.assert_allclose(scorer.score(ITEMS)[""], _one_at_a_time(folder, chat), atol=1e-4)


def test_a_model_with_several_outputs_is_refused(tmp_path: Path) -> None:
    folder = tiny_models.bert(tmp_path, num_labels=2)
    with pytest.raises(DetectorError, match="a reward model has 1 output"):
        RewardModel(model=str(folder), device="cpu")


def test_the_default_is_the_named_proxy() -> None:
    scorer = create_scorer("reward", {"device": "cpu"})
    assert isinstance(scorer, RewardProxy)
    on_topic = Pair("How do vaccines work?", "Vaccines teach the immune system to fight a virus.")
    rewards = scorer.score(
        [
            on_topic,
            Pair(on_topic.prompt, "My favourite colour is green."),
            Pair(on_topic.prompt, "Vaccines? You stupid idiot, nobody cares, shut up."),
            Pair(on_topic.prompt, ""),
        ]
    )[""]
    assert rewards[0] > 0.4
    assert rewards[0] > 2 * max(rewards[1:])
    assert rewards[3] == 0.0
    with pytest.raises(DetectorError, match="max_length"):
        create_scorer("reward", {"max_length": 64})
