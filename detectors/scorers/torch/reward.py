"""Reward of a (prompt, response) pair: a real reward model, or an explicitly named proxy.

No reward model with weights installs offline, so with no ``model`` the scorer is
:class:`RewardProxy`, a stand-in built from the embedded models. It is not a learned
preference model and must not be read as one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field, validate_call

from detectors.errors import DetectorError
from detectors.scorers.base import TextPair
from detectors.scorers.torch.batching import BatchRunner, ScoringStats
from detectors.scorers.torch.embeddings import Embeddings
from detectors.scorers.torch.hf import TextModel, load_backbone, resolve_max_length
from detectors.scorers.torch.runtime import BatchSize, DeviceSpec, Precision, Threads
from detectors.scorers.torch.toxicity import Toxicity

log = logging.getLogger(__name__)

MaxLength = Annotated[int, Field(ge=2)]


class RewardModel:
    """One logit of an ``AutoModelForSequenceClassification`` reward model per pair.

    With a chat template the pair is rendered as a user turn and an assistant turn and
    an over-long one keeps its tail (the last token is what the head reads). Without one
    it is the tokenizer's pair encoding ``tokenizer(prompt, response)``, the input
    OpenAssistant-style reward models were trained on. Padding is on the right.
    """

    outputs: tuple[str, ...] = ("",)

    @validate_call
    def __init__(
        self,
        *,
        model: Annotated[str, Field(min_length=1)],
        device: DeviceSpec = "auto",
        batch_size: BatchSize = 32,
        max_length: MaxLength | None = None,
        precision: Precision = "auto",
        threads: Threads | None = None,
    ) -> None:
        runner = BatchRunner(
            device=device,
            batch_size=batch_size,
            precision=precision,
            threads=threads,
            name="reward",
        )
        backbone = load_backbone(model, "classifier", runner.device)
        labels = backbone.model.config.num_labels
        if labels != 1:
            raise DetectorError(f"model={model!r}: a reward model has 1 output, this has {labels}")
        self._text = TextModel(backbone, runner, resolve_max_length(max_length, backbone, 512))
        self.chat_template = bool(getattr(backbone.tokenizer, "chat_template", None))

    @property
    def stats(self) -> ScoringStats:
        return self._text.runner.stats

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        if not items:
            return {"": np.zeros(0, dtype=np.float32)}
        if self.chat_template:
            render = self._text.backbone.tokenizer.apply_chat_template
            texts = [
                render(
                    [
                        {"role": "user", "content": item.prompt},
                        {"role": "assistant", "content": item.response},
                    ],
                    tokenize=False,
                )
                for item in items
            ]
            out = self._text.run(texts, None, self._forward, special_tokens=False, keep="tail")
        else:
            prompts = [i.prompt for i in items]
            out = self._text.run(prompts, [i.response for i in items], self._forward)
        return {"": out["reward"]}

    def _forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"reward": self._text.backbone.model(**inputs).logits[:, 0]}


class RewardProxy:
    """A STAND-IN, not a reward model: ``max(0, cos(prompt, response)) * (1 - toxicity)``.

    Relevance is the cosine of the embedder's prompt and response vectors (0 for a blank
    response, which MiniLM would otherwise find half-relevant to anything), non-toxicity
    is one minus the toxicity scorer's aggregate. It rises for on-topic, civil answers and
    knows nothing of correctness, helpfulness or preference. Both backbones come from the
    model cache, so configuring ``embeddings`` and ``toxicity`` too loads nothing more.
    """

    outputs: tuple[str, ...] = ("",)

    @validate_call
    def __init__(
        self,
        *,
        device: DeviceSpec = "auto",
        batch_size: BatchSize = 64,
        precision: Precision = "auto",
        threads: Threads | None = None,
    ) -> None:
        options = {
            "device": device,
            "batch_size": batch_size,
            "precision": precision,
            "threads": threads,
        }
        self._embeddings = Embeddings(**options)
        self._toxicity = Toxicity(**options)
        log.warning(
            "reward: no model configured, scoring with the relevance x non-toxicity proxy, "
            "which is not a trained reward model"
        )

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        vectors = self._embeddings.score(items)
        relevance = np.clip((vectors["prompt"] * vectors["response"]).sum(axis=1), 0.0, 1.0)
        relevance[np.array([not item.response.strip() for item in items], dtype=bool)] = 0.0
        toxicity = self._toxicity.score(items)[""]
        return {"": relevance * (1.0 - toxicity)}


@validate_call
def create_reward(
    *,
    model: Annotated[str, Field(min_length=1)] | None = None,
    device: DeviceSpec = "auto",
    batch_size: BatchSize | None = None,
    max_length: MaxLength | None = None,
    precision: Precision = "auto",
    threads: Threads | None = None,
) -> RewardModel | RewardProxy:
    """The ``reward`` scorer: ``model`` (a folder or hub id) or, without it, the proxy."""
    options: dict[str, Any] = {"device": device, "precision": precision, "threads": threads}
    if batch_size is not None:
        options["batch_size"] = batch_size
    if model is not None:
        return RewardModel(model=model, max_length=max_length, **options)
    if max_length is not None:
        raise ValueError("max_length: applies to a reward model, not to the proxy")
    return RewardProxy(**options)
