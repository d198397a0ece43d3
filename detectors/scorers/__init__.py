"""Scorers by config name. Import strings keep torch-backed scorers lazy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.registry import create
from detectors.scorers.base import Scorer, TextPair, output_names

SCORERS: dict[str, str] = {
    "response_tokens": "detectors.scorers.text:ResponseTokens",
    "refusal": "detectors.scorers.text:RefusalFlag",
    "toxicity": "detectors.scorers.torch.toxicity:Toxicity",
    "reward": "detectors.scorers.torch.reward:create_reward",
    "embeddings": "detectors.scorers.torch.embeddings:Embeddings",
    "sentiment": "detectors.bias.scorers:Sentiment",
    "identity_mentions": "detectors.bias.scorers:IdentityMentions",
}


def create_scorer(type_name: str, options: Mapping[str, Any] | None = None) -> Scorer:
    """Build the scorer registered as ``type_name``; bad options raise DetectorError."""
    return create(SCORERS, type_name, "scorer", options)


__all__ = ["SCORERS", "Scorer", "TextPair", "create_scorer", "output_names"]
