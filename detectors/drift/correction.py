"""Multiple-testing corrections over one window's p-values.

Bonferroni controls the family-wise error rate under any dependence. Benjamini-Hochberg
controls the false discovery rate (under independence or positive dependence, which tests
on the same window mostly have); when nothing drifted every discovery is false, so it then
bounds the chance of any alarm by alpha as well. Either way, enabling more tests does not
raise the per-window false-alarm rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from detectors.errors import DetectorError

Correction = Literal["bh", "bonferroni"]


def adjust_p_values(p_values: Sequence[float], method: Correction) -> np.ndarray:
    """Adjusted p-values, in input order: reject where adjusted <= alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise DetectorError("p-values must be a 1-d sequence of numbers in [0, 1]")
    if p.size == 0:
        return p
    if method == "bonferroni":
        return np.minimum(p * p.size, 1.0)
    if method == "bh":
        order = np.argsort(p)
        scaled = p[order] * p.size / np.arange(1, p.size + 1)
        # q_(i) = min over j >= i of p_(j) m / j: a running minimum from the largest down.
        adjusted = np.empty_like(p)
        adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
        return adjusted
    raise DetectorError(f"unknown correction {method!r}; known: bh, bonferroni")
