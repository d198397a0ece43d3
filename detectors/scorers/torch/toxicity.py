"""Toxicity of the response (and optionally the prompt): the Jigsaw BiLSTM by default,
any Hugging Face sequence classifier with ``model``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

import numpy as np
import torch
from pydantic import Field, validate_call

from detectors.scorers.base import TextPair
from detectors.scorers.torch import bilstm
from detectors.scorers.torch.batching import BatchRunner, ScoringStats
from detectors.scorers.torch.cache import MODELS
from detectors.scorers.torch.hf import TextModel, load_backbone, resolve_max_length
from detectors.scorers.torch.runtime import BatchSize, DeviceSpec, Precision, Threads

Activation = Literal["auto", "sigmoid", "softmax"]


class _Backend(Protocol):
    labels: tuple[str, ...]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(eq=False)
class _Jigsaw:
    tokenizer: bilstm.KerasWordTokenizer
    model: bilstm.JigsawBiLSTM


class BiLSTMBackend:
    """The embedded default: six Jigsaw labels, fixed 100-token input (so no bucketing)."""

    labels = bilstm.LABELS

    def __init__(self, runner: BatchRunner) -> None:
        self.runner = runner
        tokenizer_path, weights_path = bilstm.package_files()

        def load() -> _Jigsaw:
            model = bilstm.JigsawBiLSTM.from_keras_h5(weights_path).to(runner.device)
            return _Jigsaw(bilstm.KerasWordTokenizer.load(tokenizer_path), model)

        self.jigsaw = MODELS.get(("bilstm", str(weights_path), str(runner.device)), load)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        def prepare(indices: np.ndarray) -> dict[str, torch.Tensor]:
            rows = [self.jigsaw.tokenizer.ids(texts[i]) for i in indices]
            self.runner.stats.truncated += sum(len(r) > bilstm.MAXLEN for r in rows)
            return {"ids": bilstm.pad_front(rows)}

        def forward(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {"p": self.jigsaw.model(inputs["ids"])}

        return self.runner.run([0] * len(texts), prepare, forward)["p"]


class ClassifierBackend:
    """A transformers sequence classifier; label names come from its config."""

    def __init__(
        self, model: str, runner: BatchRunner, max_length: int | None, activation: Activation
    ) -> None:
        backbone = load_backbone(model, "classifier", runner.device)
        self._text = TextModel(backbone, runner, resolve_max_length(max_length, backbone, 512))
        config = backbone.model.config
        self.labels = _label_names([config.id2label[i] for i in range(config.num_labels)])
        if activation == "auto":
            multi = config.problem_type == "multi_label_classification" or config.num_labels == 1
            activation = "sigmoid" if multi else "softmax"
        self._softmax = activation == "softmax"

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self._text.run(texts, None, self._forward)["p"]

    def _forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self._text.backbone.model(**inputs).logits.float()
        return {"p": logits.softmax(dim=-1) if self._softmax else logits.sigmoid()}


def _label_names(raw: Sequence[str]) -> tuple[str, ...]:
    names: list[str] = []
    for index, label in enumerate(raw):
        name = re.sub(r"[^0-9a-z]+", "_", str(label).lower()).strip("_") or f"label_{index}"
        names.append(f"{name}_{index}" if name in names else name)
    return tuple(names)


class Toxicity:
    """Per-label probabilities of the response; ``""`` is the aggregate toxicity.

    ``aggregate``: ``auto`` (the label named toxic or toxicity), ``max``, ``mean`` or a
    label name. ``prompt=True`` adds ``prompt``, the aggregate scored on the prompt.
    ``activation`` (classifiers only): ``auto`` is sigmoid when the config's problem_type
    is multi-label or there is one logit, else softmax.
    """

    @validate_call
    def __init__(
        self,
        *,
        model: Annotated[str, Field(min_length=1)] | None = None,
        aggregate: Annotated[str, Field(min_length=1)] = "auto",
        activation: Activation = "auto",
        prompt: bool = False,
        device: DeviceSpec = "auto",
        batch_size: BatchSize = 64,
        max_length: Annotated[int, Field(ge=2)] | None = None,
        precision: Precision = "auto",
        threads: Threads | None = None,
    ) -> None:
        if model is None and max_length is not None:
            raise ValueError("max_length: the default BiLSTM always reads its last 100 tokens")
        if model is None and activation != "auto":
            raise ValueError("activation: the default BiLSTM is fixed to sigmoid")
        runner = BatchRunner(
            device=device,
            batch_size=batch_size,
            # The small BiLSTM stays in fp32 unless asked: exact, and fast enough anywhere.
            precision="fp32" if model is None and precision == "auto" else precision,
            threads=threads,
            name="toxicity",
        )
        self._backend: _Backend = (
            BiLSTMBackend(runner)
            if model is None
            else ClassifierBackend(model, runner, max_length, activation)
        )
        self._runner = runner
        labels = self._backend.labels
        self._aggregate = _resolve_aggregate(aggregate, labels)
        shown = [label for label in labels if label != self._aggregate]
        if "prompt" in shown:
            raise ValueError("model: a label named 'prompt' would clash with the prompt score")
        self.labels = labels
        self.prompt = prompt
        self.outputs: tuple[str, ...] = ("", *shown, *(("prompt",) if prompt else ()))

    @property
    def stats(self) -> ScoringStats:
        return self._runner.stats

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), len(labels))`` probabilities in input order."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self._backend.probabilities(texts)

    def aggregate(self, probabilities: np.ndarray) -> np.ndarray:
        if self._aggregate == "max":
            return probabilities.max(axis=1)
        if self._aggregate == "mean":
            return probabilities.mean(axis=1)
        return probabilities[:, self.labels.index(self._aggregate)]

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        n = len(items)
        texts = [i.response for i in items]
        if self.prompt:
            texts += [i.prompt for i in items]
        probabilities = self.probabilities(texts)
        scores = {"": self.aggregate(probabilities[:n])}
        for index, label in enumerate(self.labels):
            if label != self._aggregate:
                scores[label] = probabilities[:n, index]
        if self.prompt:
            scores["prompt"] = self.aggregate(probabilities[n:])
        return scores


def _resolve_aggregate(aggregate: str, labels: tuple[str, ...]) -> str:
    if aggregate == "auto":
        for name in ("toxic", "toxicity"):
            if name in labels:
                return name
        raise ValueError(
            f"aggregate='auto': the model's labels {list(labels)} include no 'toxic'; "
            "set aggregate to 'max', 'mean' or one of the labels"
        )
    if aggregate in {"max", "mean"} or aggregate in labels:
        return aggregate
    raise ValueError(f"aggregate={aggregate!r}: use 'auto', 'max', 'mean' or one of {list(labels)}")
