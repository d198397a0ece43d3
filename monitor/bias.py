"""Bias of the monitored model in each window, as configured under ``bias:``.

Group-mention disparity (BOLD's comparison on production traffic), segment disparity by
metadata key, and how much of a toxicity gap the toxicity scorer's own reaction to
identity terms could explain. The statistics live in ``detectors.bias``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from detectors.bias import (
    Disparity,
    counterfactual_sensitivity,
    explained_share,
    mention_disparities,
    mention_labels,
    segment_disparities,
)
from monitor.config import BiasConfig
from monitor.errors import ConfigError
from monitor.scoring import NamedScorer
from monitor.store import Store
from monitor.windows import WindowContents


@dataclass(frozen=True)
class _Text:
    prompt: str
    response: str


class BiasStage:
    def __init__(
        self,
        config: BiasConfig,
        scorers: list[NamedScorer],
        store: Store,
        scoring_lock: threading.Lock,
    ):
        by_name = {named.name: named.scorer for named in scorers}
        mentions = by_name.get(config.mentions)
        if mentions is None or not hasattr(mentions, "groups"):
            raise ConfigError(
                f"bias.mentions: {config.mentions!r} names no identity_mentions scorer"
            )
        self._config = config
        self._groups = mentions.groups
        self._lexicon = mentions.lexicon
        self._toxicity = by_name.get(config.toxicity) if config.sensitivity else None
        self._store = store
        self._lock = scoring_lock

    def keeps_text(self, scores: Mapping[str, float]) -> bool:
        """Records mentioning a group keep their texts for the sensitivity check."""
        prefix = f"{self._config.mentions}_"
        return any(v == 1.0 for k, v in scores.items() if k.startswith(prefix))

    def evaluate(self, contents: WindowContents) -> tuple[dict[str, Any], dict[str, float]]:
        """The window's ``bias`` section, and its headline numbers for ``metrics``."""
        config = self._config
        scores = contents.scores
        names = [f"{config.mentions}_{c}_{g}" for c, g in self._groups]
        if contents.count == 0 or any(name not in scores for name in names):
            return {"not_tested": "no identity_mentions scores in this window"}, {}
        mentions: list[Disparity] = []
        for category, labels in mention_labels(scores, self._groups, config.mentions).items():
            mentions += mention_disparities(
                category,
                labels,
                toxicity=scores.get(config.toxicity),
                sentiment=scores.get(config.sentiment),
                refusal=scores.get(config.refusal),
                toxic_threshold=config.toxic_threshold,
                min_count=config.min_count,
            )
        segments: list[Disparity] = []
        for key in config.segments:
            values = np.array([str(m.get(key) or "") for m in contents.metadata], dtype=object)
            segments += segment_disparities(
                key,
                values,
                toxicity=scores.get(config.toxicity),
                reward=scores.get(config.reward),
                toxic_threshold=config.toxic_threshold,
                min_count=config.min_count,
            )
        section: dict[str, Any] = {
            "mentions": [self._describe(d, contents) for d in mentions],
            "segments": [asdict(d) for d in segments],
        }
        return section, _headlines(mentions, "bias") | _headlines(segments, "bias_segment")

    def _describe(self, disparity: Disparity, contents: WindowContents) -> dict[str, Any]:
        described = asdict(disparity)
        if disparity.metric == "toxicity_rate" and self._toxicity is not None:
            texts = [
                _Text(r.get("prompt", ""), r["response"])
                for r in self._store.records_with_texts([contents.window.start_ms])
                if "response" in r
            ]
            with self._lock:
                sensitivity = counterfactual_sensitivity(
                    self._toxicity,
                    texts,
                    self._lexicon.categories[disparity.category],
                    threshold=self._config.toxic_threshold,
                    max_texts=self._config.sensitivity_texts,
                )
            described["scorer_sensitivity"] = {
                "texts": sensitivity.texts,
                "mean_abs_diff": _finite(sensitivity.mean_abs_diff),
                "explained_share": explained_share(disparity, sensitivity.rate_shifts()),
            }
        return described


def _headlines(disparities: list[Disparity], prefix: str) -> dict[str, float]:
    """Per category (or key), the largest disparity's effect size and p-value."""
    largest: dict[str, Disparity] = {}
    for d in disparities:
        if d.category not in largest or abs(d.effect_size) > abs(largest[d.category].effect_size):
            largest[d.category] = d
    metrics: dict[str, float] = {}
    for category, d in largest.items():
        metrics[f"{prefix}_{category}_effect"] = abs(d.effect_size)
        metrics[f"{prefix}_{category}_p_value"] = d.p_value
    return metrics


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
