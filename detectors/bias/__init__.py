"""Bias measures from live traffic: identity-group mentions, window-level disparity
statistics and the counterfactual check of a scorer's own sensitivity to identity terms."""

from __future__ import annotations

from detectors.bias.counterfactual import PairSensitivity, Sensitivity, counterfactual_sensitivity
from detectors.bias.lexicon import DEFAULT_LEXICON, Category, Lexicon, load_lexicon
from detectors.bias.stats import (
    Disparity,
    explained_share,
    group_labels,
    mention_disparities,
    mention_labels,
    segment_disparities,
)

__all__ = [
    "DEFAULT_LEXICON",
    "Category",
    "Disparity",
    "Lexicon",
    "PairSensitivity",
    "Sensitivity",
    "counterfactual_sensitivity",
    "explained_share",
    "group_labels",
    "load_lexicon",
    "mention_disparities",
    "mention_labels",
    "segment_disparities",
]
