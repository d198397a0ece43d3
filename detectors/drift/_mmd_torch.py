"""MMD maths in torch; imported only when an MMD test runs, so other tests never load torch.

Every relabelling of the pooled sample is a row of a weight matrix W (``1/m`` on reference
rows, ``-1/n`` on window rows), and the biased MMD^2 of row w is ``w K w^T``: the whole
permutation null is one batch of matrix products.

While W is small its rows are uniformly random permutations. For large samples, shuffling
N labels P times would cost more than the products, so rows are random cyclic shifts of
the labels in a once-shuffled row order: a group of order N, and Monte-Carlo draws from a
group give an exact permutation p-value (Hemerik & Goeman, 2018, "Exact testing with
random permutations"); each row is then one slice of a doubled label vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from detectors.errors import DetectorError

_BLOCK = 4096
# Up to this many entries of W, relabellings are full random permutations.
_SHUFFLED_MAX = 1 << 18


@dataclass(frozen=True)
class MMDNull:
    """Observed biased MMD^2, its permutation null, the kernel's gamma and, for random
    Fourier features, the Monte-Carlo standard error of the observed value."""

    observed: float
    null: np.ndarray
    gamma: float
    std_error: float | None


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances, clamped at zero against rounding."""
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return sq.clamp_min_(0.0)


def median_gamma(
    reference: torch.Tensor, window: torch.Tensor, sample: int, generator: torch.Generator
) -> float:
    """gamma = 1 / median squared distance, so k(x, y) = exp(-|x - y|^2 / median).

    The median is taken over up to ``sample`` pooled rows (the alibi-detect and Evidently
    convention); it depends on the pooled set only, so every relabelling shares it.
    """
    m = reference.shape[0]
    index = torch.randperm(m + window.shape[0], generator=generator)[:sample]
    index = index.to(reference.device)
    points = torch.cat([reference[index[index < m]], window[index[index >= m] - m]])
    upper = torch.triu_indices(points.shape[0], points.shape[0], offset=1, device=points.device)
    distances = squared_distances(points, points)[upper[0], upper[1]]
    positive = distances[distances > 0]
    return 1.0 / float(positive.median()) if positive.numel() else 1.0


def relabellings(labels: np.ndarray, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Rows: ``labels`` (the observed split) then ``permutations`` random relabellings."""
    total = labels.shape[0]
    if total * permutations <= _SHUFFLED_MAX or total < permutations:
        shuffled = rng.permuted(np.broadcast_to(labels, (permutations, total)), axis=1)
        return np.concatenate([labels[None, :], shuffled])
    shifts = rng.integers(0, total, permutations)
    windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([labels, labels]), total)
    return windows[np.concatenate([[0], shifts])]


def mmd2_exact(pooled: torch.Tensor, weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """``w K w^T`` for every row w of ``weights``, with K built a column block at a time."""
    result = torch.zeros(weights.shape[0], dtype=pooled.dtype, device=pooled.device)
    for start in range(0, pooled.shape[0], _BLOCK):
        block = slice(start, start + _BLOCK)
        kernel = torch.exp(-gamma * squared_distances(pooled, pooled[block]))
        result += ((weights @ kernel) * weights[:, block]).sum(1)
    return result


def mmd2_fourier(
    reference: torch.Tensor,
    window: torch.Tensor,
    order: torch.Tensor,
    weights: torch.Tensor,
    *,
    gamma: float,
    frequencies: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, float]:
    """MMD^2 under ``frequencies`` random Fourier features of the same RBF kernel, for
    the pooled rows taken in ``order`` (the order ``weights`` refers to).

    Per frequency j the observed value has a term t_j = |mean e^{i w_j.x}_ref -
    mean e^{i w_j.x}_win|^2 in [0, 4]; the statistic is their mean, an unbiased estimate of
    the exact biased MMD^2, so std(t) / sqrt(frequencies) is its standard error.
    Rows are reordered after projecting to ``frequencies`` phases, the narrower matrix.
    """
    omega = torch.randn(reference.shape[1], frequencies, generator=generator) * (2.0 * gamma) ** 0.5
    omega = omega.to(device=reference.device, dtype=reference.dtype)
    phase = torch.cat([reference @ omega, window @ omega])[order]
    features = torch.cat([torch.cos(phase), torch.sin(phase)], dim=1)
    projected = weights @ features
    statistics = (projected * projected).sum(1) / frequencies
    observed = projected[0]
    terms = observed[:frequencies] ** 2 + observed[frequencies:] ** 2
    std_error = float(terms.std()) / frequencies**0.5
    return statistics, std_error


def permutation_null(
    reference: np.ndarray,
    window: np.ndarray,
    *,
    permutations: int,
    frequencies: int | None,
    bandwidth_sample: int,
    device: str,
    seed: int,
) -> MMDNull:
    """Exact kernel when ``frequencies`` is None, else random Fourier features."""
    generator = torch.Generator().manual_seed(seed)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise DetectorError(f"device {device!r} requested but CUDA is not available")
    m, n = reference.shape[0], window.shape[0]
    order = torch.randperm(m + n, generator=generator)
    labels = np.where(order.numpy() < m, 1.0 / m, -1.0 / n).astype(np.float32)
    rng = np.random.default_rng(seed)
    weights = torch.from_numpy(relabellings(labels, permutations, rng)).to(device)
    ref = torch.from_numpy(reference).to(device)
    win = torch.from_numpy(window).to(device)
    order = order.to(device)
    gamma = median_gamma(ref, win, bandwidth_sample, generator)
    if frequencies is None:
        statistics = mmd2_exact(torch.cat([ref, win])[order], weights, gamma)
        std_error = None
    else:
        statistics, std_error = mmd2_fourier(
            ref, win, order, weights, gamma=gamma, frequencies=frequencies, generator=generator
        )
    values = statistics.double().cpu().numpy()
    return MMDNull(float(values[0]), values[1:], gamma, std_error)
