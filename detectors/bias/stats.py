"""Window-level disparity statistics: pure functions over per-record arrays.

Rates (toxicity above a threshold, refusals) are compared with a chi-squared test on the
2x2 table (Yates-corrected) and Cohen's h as effect size; continuous scores (sentiment,
reward) with a two-sided Mann-Whitney U test and the rank-biserial correlation. When the
largest of several comparisons is reported, its p-value is Bonferroni-adjusted for all of
them, so picking the most extreme pair does not manufacture significance. Groups or
segments with fewer than ``min_count`` usable values are left out. NaN scores are skipped.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

RATE_METRICS = frozenset({"toxicity_rate", "refusal_rate"})


@dataclass(frozen=True, slots=True)
class Disparity:
    """One comparison between two groups; ``groups[0]`` has the higher value."""

    category: str  # lexicon category, or the metadata key for segments
    metric: str  # toxicity_rate | refusal_rate | sentiment | reward
    groups: tuple[str, str]
    values: tuple[float, float]  # rate or mean per group
    n: tuple[int, int]
    test: str  # chi2 | mann_whitney
    statistic: float
    p_value: float  # adjusted for `comparisons`
    effect_size: float  # Cohen's h for rates, rank-biserial correlation otherwise
    comparisons: int


def group_labels(mentions: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per record, the one group of a category it mentions; ``""`` for none or several
    (a record mentioning two groups cannot be attributed to either)."""
    names = list(mentions)
    if not names:
        return np.array([], dtype=object)
    flags = np.column_stack([np.asarray(mentions[g]) > 0 for g in names])
    labels = np.full(flags.shape[0], "", dtype=object)
    single = flags.sum(axis=1) == 1
    labels[single] = np.asarray(names, dtype=object)[flags[single].argmax(axis=1)]
    return labels


def mention_labels(
    scores: Mapping[str, np.ndarray],
    groups: Sequence[tuple[str, str]],
    prefix: str = "identity_mentions",
) -> dict[str, np.ndarray]:
    """Group labels per category from the identity_mentions scores of a window, named
    ``<prefix>_<category>_<group>``; ``groups`` is the scorer's (category, group) list."""
    by_category: dict[str, dict[str, np.ndarray]] = {}
    for category, group in groups:
        by_category.setdefault(category, {})[group] = scores[f"{prefix}_{category}_{group}"]
    return {category: group_labels(columns) for category, columns in by_category.items()}


def mention_disparities(
    category: str,
    labels: np.ndarray,
    *,
    toxicity: np.ndarray | None = None,
    sentiment: np.ndarray | None = None,
    refusal: np.ndarray | None = None,
    toxic_threshold: float = 0.5,
    min_count: int = 20,
) -> tuple[Disparity, ...]:
    """For each given metric, the largest disparity between two groups of ``category``
    (BOLD's comparison, on production traffic). ``labels`` come from :func:`group_labels`;
    records labelled ``""`` are ignored. Metrics with fewer than two groups of
    ``min_count`` records are omitted."""
    labels = _as_labels(labels)
    found: list[Disparity] = []
    for metric, values in _metrics(toxicity, sentiment, refusal, None, toxic_threshold):
        samples = {str(g): _finite(values[labels == g]) for g in np.unique(labels[labels != ""])}
        eligible = {g: v for g, v in samples.items() if len(v) >= min_count}
        pairs = list(itertools.combinations(sorted(eligible), 2))
        tested = [_compare(category, metric, (a, eligible[a]), (b, eligible[b])) for a, b in pairs]
        if tested:
            largest = max(tested, key=lambda d: abs(d.effect_size))
            found.append(_adjusted(largest, len(tested)))
    return tuple(found)


def segment_disparities(
    key: str,
    segments: np.ndarray,
    *,
    toxicity: np.ndarray | None = None,
    reward: np.ndarray | None = None,
    toxic_threshold: float = 0.5,
    min_count: int = 20,
) -> tuple[Disparity, ...]:
    """Each segment of metadata ``key`` against the rest of the window, per metric,
    p-values adjusted for the number of segments tested. ``segments`` holds one label per
    record (None or "" for records without the key, which only count towards "rest")."""
    segments = _as_labels(segments)
    found: list[Disparity] = []
    for metric, values in _metrics(toxicity, None, None, reward, toxic_threshold):
        tested = []
        for segment in sorted(set(segments[segments != ""])):
            inside = segments == segment
            a, b = _finite(values[inside]), _finite(values[~inside])
            if len(a) >= min_count and len(b) >= min_count:
                tested.append(_compare(key, metric, (segment, a), ("rest", b), ordered=True))
        found.extend(_adjusted(d, len(tested)) for d in tested)
    return tuple(found)


def explained_share(
    disparity: Disparity, rate_shift: Mapping[tuple[str, str], float]
) -> float | None:
    """How much of a toxicity-rate gap the scorer's own reaction to identity terms could
    explain, from 0 to 1.

    ``rate_shift[(x, y)]`` is the change in toxicity rate when group x's terms are swapped
    for group y's in the same texts (see :mod:`detectors.bias.counterfactual`). The
    scorer alone would rate group a above group b by the mean of shift(b -> a) and
    -shift(a -> b); that, over the measured gap, is the share. None when not comparable.
    """
    if disparity.metric != "toxicity_rate":
        return None
    a, b = disparity.groups
    estimates = []
    if (b, a) in rate_shift:
        estimates.append(rate_shift[b, a])
    if (a, b) in rate_shift:
        estimates.append(-rate_shift[a, b])
    gap = disparity.values[0] - disparity.values[1]
    if not estimates or gap <= 0:
        return None
    return float(min(1.0, max(0.0, float(np.mean(estimates)) / gap)))


def _metrics(
    toxicity: np.ndarray | None,
    sentiment: np.ndarray | None,
    refusal: np.ndarray | None,
    reward: np.ndarray | None,
    threshold: float,
) -> list[tuple[str, np.ndarray]]:
    """Named per-record values; rates become 0/1 with NaN kept as NaN."""
    metrics = []
    if toxicity is not None:
        tox = np.asarray(toxicity, dtype=np.float64)
        metrics.append(("toxicity_rate", np.where(np.isnan(tox), np.nan, tox >= threshold)))
    if refusal is not None:
        ref = np.asarray(refusal, dtype=np.float64)
        metrics.append(("refusal_rate", np.where(np.isnan(ref), np.nan, ref > 0.5)))
    if sentiment is not None:
        metrics.append(("sentiment", np.asarray(sentiment, dtype=np.float64)))
    if reward is not None:
        metrics.append(("reward", np.asarray(reward, dtype=np.float64)))
    return metrics


def _as_labels(values: np.ndarray) -> np.ndarray:
    """Labels as strings, ``""`` for missing (None), whatever type metadata values had."""
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _compare(
    category: str,
    metric: str,
    first: tuple[str, np.ndarray],
    second: tuple[str, np.ndarray],
    *,
    ordered: bool = False,
) -> Disparity:
    """Test one pair; unless ``ordered``, the group with the higher value comes first."""
    (a, x), (b, y) = first, second
    if not ordered and x.mean() < y.mean():
        a, b, x, y = b, a, y, x
    if metric in RATE_METRICS:
        test, statistic, p_value, effect = "chi2", *_rate_test(x, y)
    else:
        test, statistic, p_value, effect = "mann_whitney", *_rank_test(x, y)
    return Disparity(
        category=category,
        metric=metric,
        groups=(a, b),
        values=(float(x.mean()), float(y.mean())),
        n=(len(x), len(y)),
        test=test,
        statistic=statistic,
        p_value=p_value,
        effect_size=effect,
        comparisons=1,
    )


def _rate_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Chi-squared statistic, p-value and Cohen's h for two samples of 0/1."""
    hits = np.array([x.sum(), y.sum()])
    table = np.column_stack([hits, [len(x), len(y)] - hits])
    effect = 2 * math.asin(math.sqrt(x.mean())) - 2 * math.asin(math.sqrt(y.mean()))
    if (table.sum(axis=0) == 0).any():  # nobody (or everybody) positive: no difference
        return 0.0, 1.0, effect
    result = stats.chi2_contingency(table, correction=True)
    return float(result.statistic), float(result.pvalue), effect


def _rank_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Mann-Whitney U (of x), two-sided p-value and rank-biserial correlation."""
    if np.ptp(np.concatenate([x, y])) == 0:
        return len(x) * len(y) / 2, 1.0, 0.0
    result = stats.mannwhitneyu(x, y, alternative="two-sided")
    effect = 2 * result.statistic / (len(x) * len(y)) - 1
    return float(result.statistic), float(result.pvalue), float(effect)


def _adjusted(disparity: Disparity, comparisons: int) -> Disparity:
    p_value = min(1.0, disparity.p_value * comparisons)
    return dataclasses.replace(disparity, p_value=p_value, comparisons=comparisons)
