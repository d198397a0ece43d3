"""Say what changed once a test has fired: summaries for scores and categories, and for
embeddings which regions of the reference grew or shrank, with example texts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from detectors.drift import stats
from detectors.drift.base import as_counts, as_values, subsample_rows
from detectors.drift.correction import adjust_p_values
from detectors.errors import DetectorError


def _summary(values: np.ndarray) -> dict[str, float]:
    p10, median, p90 = (float(q) for q in np.quantile(values, [0.1, 0.5, 0.9]))
    return {"mean": float(values.mean()), "p10": p10, "median": median, "p90": p90}


def explain_score(reference: Any, window: Any) -> dict[str, Any]:
    """Mean and quantiles on both sides, so a reader sees the direction of a shift."""
    ref = as_values(reference, side="reference", minimum=1)
    win = as_values(window, side="window", minimum=1)
    return {"reference": _summary(ref), "window": _summary(win)}


def explain_categorical(
    reference: Mapping[str, int], window: Mapping[str, int], top: int = 5
) -> dict[str, Any]:
    """The ``top`` categories whose share moved most, largest move first."""
    ref = as_counts(reference, side="reference")
    win = as_counts(window, side="window")
    ref_total, win_total = sum(ref.values()), sum(win.values())
    rows = [
        {
            "category": c,
            "reference_share": ref.get(c, 0) / ref_total,
            "window_share": win.get(c, 0) / win_total,
        }
        for c in set(ref) | set(win)
    ]
    for row in rows:
        row["change"] = row["window_share"] - row["reference_share"]
    rows.sort(key=lambda r: (-abs(r["change"]), r["category"]))
    return {"changes": rows[:top]}


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(sq, 0.0)


def witness(points: np.ndarray, reference: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MMD witness at ``points``: mean kernel to the window minus mean kernel to the
    reference (median-heuristic RBF). High where the window has more mass than the
    reference, so it ranks the rows most typical of what is new."""
    pooled = np.concatenate([reference, window]).astype(np.float64)
    median = np.median(_squared_distances(pooled, pooled)[np.triu_indices(pooled.shape[0], 1)])
    gamma = 1.0 / median if median > 0 else 1.0
    x = points.astype(np.float64)
    to_window = np.exp(-gamma * _squared_distances(x, window.astype(np.float64))).mean(1)
    to_reference = np.exp(-gamma * _squared_distances(x, reference.astype(np.float64))).mean(1)
    return to_window - to_reference


def _share_test(ref_counts: np.ndarray, win_counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Shares, two-sided two-proportion z-test p-values and their BH adjustment."""
    r_share, w_share = ref_counts / ref_counts.sum(), win_counts / win_counts.sum()
    pooled = (ref_counts + win_counts) / (ref_counts.sum() + win_counts.sum())
    spread = np.sqrt(pooled * (1 - pooled) * (1 / ref_counts.sum() + 1 / win_counts.sum()))
    z = np.divide(w_share - r_share, spread, out=np.zeros_like(spread), where=spread > 0)
    p_values = 2.0 * scipy_stats.norm.sf(np.abs(z))
    return r_share, w_share, p_values, adjust_p_values(p_values, "bh")


def explain_embedding_drift(
    reference: np.ndarray,
    window: np.ndarray,
    texts: Sequence[str] | None = None,
    *,
    clusters: int = 8,
    examples: int = 3,
    alpha: float = 0.05,
    outside_share: float = 0.01,
    max_points: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Cluster the reference (k-means), place the window in those clusters and test each
    cluster's share (two-proportion z-test, Benjamini-Hochberg across clusters).

    Cluster ``-1`` holds rows farther from their nearest centre than all but
    ``outside_share`` of the reference: a new topic lands there rather than being split
    across whichever reference clusters happen to be nearest. Each cluster lists up to
    ``examples`` window texts (``texts`` aligned with ``window``'s rows): for a grown
    cluster the rows with the highest MMD witness, i.e. the most typical of what is new;
    otherwise the rows nearest its centre. ``max_points`` caps the rows used to fit
    clusters and to estimate the witness.
    """
    ref = np.asarray(reference, dtype=np.float32)
    win = np.asarray(window, dtype=np.float32)
    if texts is not None and len(texts) != win.shape[0]:
        raise DetectorError(f"{len(texts)} texts for {win.shape[0]} window rows")
    keep = np.isfinite(win).all(axis=1)
    win = win[keep]
    kept_texts = None if texts is None else [t for t, k in zip(texts, keep, strict=True) if k]
    ref = ref[np.isfinite(ref).all(axis=1)]
    if ref.shape[0] < 2 or win.shape[0] < 1:
        raise DetectorError("explaining embedding drift needs 2 reference rows and 1 window row")

    from sklearn.cluster import KMeans  # lazy: most windows never need an explanation

    rng = np.random.default_rng(seed)
    ref = subsample_rows(ref, max_points, rng)
    model = KMeans(n_clusters=min(clusters, ref.shape[0]), n_init=4, random_state=seed).fit(ref)
    ref_distance = model.transform(ref).min(1)
    limit = float(np.quantile(ref_distance, 1.0 - outside_share))
    win_distance = model.transform(win)
    win_labels = np.where(win_distance.min(1) > limit, -1, win_distance.argmin(1))
    ref_labels = np.where(ref_distance > limit, -1, model.labels_)
    ids = np.arange(-1, model.n_clusters)
    ref_counts = np.array([np.count_nonzero(ref_labels == c) for c in ids])
    win_counts = np.array([np.count_nonzero(win_labels == c) for c in ids])
    r_share, w_share, p_values, adjusted = _share_test(ref_counts, win_counts)

    significant = adjusted <= alpha
    grown = [int(c) for c in ids[significant & (w_share > r_share)]]
    shrunk = [int(c) for c in ids[significant & (w_share < r_share)]]
    scores = np.zeros(win.shape[0])
    if kept_texts is not None and grown:
        in_grown = np.isin(win_labels, grown)
        scores[in_grown] = witness(win[in_grown], ref, subsample_rows(win, max_points, rng))
    centre_distance = win_distance.min(1)

    rows = []
    for i in np.argsort(-(w_share - r_share), kind="stable"):
        cluster = int(ids[i])
        direction = "grew" if cluster in grown else "shrank" if cluster in shrunk else "unchanged"
        row: dict[str, Any] = {
            "cluster": cluster,
            "reference_share": float(r_share[i]),
            "window_share": float(w_share[i]),
            "change": float(w_share[i] - r_share[i]),
            "p_value": float(p_values[i]),
            "adjusted_p_value": float(adjusted[i]),
            "direction": direction,
        }
        if kept_texts is not None:
            members = np.flatnonzero(win_labels == cluster)
            rank = -scores[members] if direction == "grew" else centre_distance[members]
            chosen = members[np.argsort(rank, kind="stable")][:examples]
            row["examples"] = [kept_texts[j] for j in chosen]
        rows.append(row)
    statistic, p_value, _, _ = stats.chi2_counts(
        {str(c): int(n) for c, n in zip(ids, ref_counts, strict=True)},
        {str(c): int(n) for c, n in zip(ids, win_counts, strict=True)},
    )
    return {
        "clusters": rows,
        "grown": grown,
        "shrunk": shrunk,
        "test": {"name": "chi2", "statistic": statistic, "p_value": p_value},
        "n_reference": int(ref.shape[0]),
        "n_window": int(win.shape[0]),
    }
