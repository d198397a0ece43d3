"""Univariate two-sample statistics as pure functions over numpy arrays."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

# Floor for empty bins, so PSI stays finite (Evidently uses the same value).
PSI_FLOOR = 1e-4
_CHUNK = 64


def ks(reference: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """Kolmogorov-Smirnov D and its p-value (exact for small samples, conservative on ties)."""
    result = stats.ks_2samp(reference, window, method="auto")
    return float(result.statistic), float(result.pvalue)


def wasserstein_null(
    reference: np.ndarray, window: np.ndarray, permutations: int, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """Wasserstein-1 distance and its values under ``permutations`` random relabellings.

    The pooled sample is sorted once; each relabelling's distance is then the integral
    of |F_ref - F_win| as a cumulative sum, so a chunk of relabellings is one array pass.
    """
    m, n = reference.size, window.size
    pooled = np.concatenate([reference, window])
    order = np.argsort(pooled, kind="stable")
    gaps = np.diff(pooled[order])
    is_ref = np.zeros(pooled.size, dtype=bool)
    is_ref[:m] = True

    def distances(labels: np.ndarray) -> np.ndarray:
        steps = np.where(labels[:, order], 1.0 / m, -1.0 / n)
        return np.abs(np.cumsum(steps, axis=1)[:, :-1]) @ gaps

    observed = float(distances(is_ref[None, :])[0])
    null = np.empty(permutations)
    for start in range(0, permutations, _CHUNK):
        size = min(_CHUNK, permutations - start)
        labels = rng.permuted(np.broadcast_to(is_ref, (size, pooled.size)), axis=1)
        null[start : start + size] = distances(labels)
    return observed, null


def chi2_counts(
    reference: Mapping[str, int], window: Mapping[str, int], min_expected: float = 5.0
) -> tuple[float, float, int, list[str]]:
    """Chi-squared test of homogeneity on a 2 x K table of category counts.

    Categories whose expected count is below ``min_expected`` in either row are pooled
    (smallest first) until the pool meets it too, which keeps the asymptotic p-value
    honest with rare or new categories. Returns statistic, p-value, degrees of freedom
    and the pooled category names.
    """
    categories = sorted(set(reference) | set(window))
    table = np.array(
        [[reference.get(c, 0) for c in categories], [window.get(c, 0) for c in categories]],
        dtype=np.float64,
    )
    totals = table.sum(axis=0)
    # A column meets min_expected in both rows once its total reaches this.
    needed = min_expected * table.sum() / table.sum(axis=1).min()
    ascending = np.argsort(totals, kind="stable")
    pooled: list[int] = []
    pool_total = 0.0
    for index in ascending:
        if totals[index] >= needed and (not pooled or pool_total >= needed):
            break
        pooled.append(int(index))
        pool_total += totals[index]
    kept = [i for i in range(len(categories)) if i not in set(pooled)]
    columns = [table[:, kept]] + ([table[:, pooled].sum(axis=1, keepdims=True)] if pooled else [])
    merged = np.hstack(columns)
    if merged.shape[1] < 2:
        return 0.0, 1.0, 0, [categories[i] for i in pooled]
    statistic, p_value, dof, _ = stats.chi2_contingency(merged, correction=False)
    return float(statistic), float(p_value), int(dof), [categories[i] for i in pooled]


def cramers_v(statistic: float, total: float) -> float:
    """Cramer's V of a 2 x K table: sqrt(chi2 / N), in [0, 1]."""
    return float(np.sqrt(statistic / total)) if total > 0 else 0.0


def reference_bins(reference: np.ndarray, bins: int) -> np.ndarray:
    """Interior bin edges at the reference's quantiles (duplicates merged for discrete scores)."""
    return np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def binned_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` per bin; bin i holds (edges[i-1], edges[i]]."""
    index = np.searchsorted(edges, values, side="left")
    return np.bincount(index, minlength=edges.size + 1) / values.size


def psi(reference_shares: np.ndarray, window_shares: np.ndarray) -> float:
    """Population stability index: sum((w - r) * ln(w / r)), empty bins floored."""
    r = np.clip(reference_shares, PSI_FLOOR, None)
    w = np.clip(window_shares, PSI_FLOOR, None)
    return float(np.sum((w - r) * np.log(w / r)))


def js_distance(reference_shares: np.ndarray, window_shares: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence, natural log), in [0, 0.833]."""
    return float(jensenshannon(reference_shares, window_shares))
