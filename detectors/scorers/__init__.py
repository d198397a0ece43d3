"""Scorers by config name. Import strings keep torch-backed scorers lazy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from detectors.errors import DetectorError
from detectors.registry import resolve
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
    cls = resolve(SCORERS, type_name, "scorer")
    try:
        return cls(**dict(options or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise DetectorError(f"invalid options for scorer {type_name!r}: {problems}") from None
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"invalid options for scorer {type_name!r}: {exc}") from None


__all__ = ["SCORERS", "Scorer", "TextPair", "create_scorer", "output_names"]
