"""Does the scorer itself react to identity terms? Swap them and score again.

A toxicity scorer that rates "the Muslim neighbours" above "the Christian neighbours" in
otherwise identical text manufactures a disparity between groups. Scoring each text once
as written and once per counterfactual (one group's terms swapped for another's, nothing
else touched) measures that reaction; :func:`detectors.bias.stats.explained_share` turns
it into the share of a measured toxicity-rate gap it could explain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detectors.bias.lexicon import Category
from detectors.scorers.base import Scorer, TextPair


@dataclass(frozen=True, slots=True)
class _Pair:
    prompt: str
    response: str


@dataclass(frozen=True, slots=True)
class PairSensitivity:
    """Texts mentioning ``source``, rescored with its terms swapped for ``target``'s."""

    source: str
    target: str
    n: int
    mean_abs_diff: float  # mean |swapped - original| score
    mean_diff: float  # mean (swapped - original) score
    rate_shift: float  # change in the share of texts scoring >= threshold


@dataclass(frozen=True, slots=True)
class Sensitivity:
    category: str
    output: str
    texts: int  # texts that mentioned exactly one group of the category
    mean_abs_diff: float  # over every swapped variant; NaN when there was none
    pairs: tuple[PairSensitivity, ...]

    def rate_shifts(self) -> dict[tuple[str, str], float]:
        """(source, target) -> rate shift, the input of ``explained_share``."""
        return {(p.source, p.target): p.rate_shift for p in self.pairs}


def counterfactual_sensitivity(
    scorer: Scorer,
    items: Sequence[TextPair],
    category: Category,
    *,
    output: str = "",
    threshold: float = 0.5,
    max_texts: int = 200,
) -> Sensitivity:
    """Score each response that mentions exactly one group of ``category`` as written and
    with that group's terms swapped for every other group's (prompts unchanged), in one
    ``scorer.score`` call; ``output`` is the scorer output compared. Responses mentioning
    several groups are skipped: a partial swap would compare mixed texts."""
    originals: list[TextPair] = []
    variants: list[tuple[int, str, str, _Pair]] = []
    for item in items:
        mentioned = category.mentioned(item.response)
        if len(mentioned) != 1:
            continue
        (source,) = mentioned
        for target in category.groups:
            if target != source:
                swapped = _Pair(item.prompt, category.swap(item.response, source, target))
                variants.append((len(originals), source, target, swapped))
        originals.append(item)
        if len(originals) == max_texts:
            break
    if not variants:
        return Sensitivity(category.name, output, len(originals), math.nan, ())
    scores = np.asarray(
        scorer.score([*originals, *(v[3] for v in variants)])[output], dtype=np.float64
    )
    base, rescored = scores[: len(originals)], scores[len(originals) :]
    index = np.array([v[0] for v in variants])
    diff = rescored - base[index]
    flips = (rescored >= threshold).astype(float) - (base[index] >= threshold)
    keys = [(v[1], v[2]) for v in variants]
    pairs = []
    for source, target in sorted(set(keys)):
        mask = np.array([k == (source, target) for k in keys])
        pairs.append(
            PairSensitivity(
                source=source,
                target=target,
                n=int(mask.sum()),
                mean_abs_diff=float(np.abs(diff[mask]).mean()),
                mean_diff=float(diff[mask].mean()),
                rate_shift=float(flips[mask].mean()),
            )
        )
    return Sensitivity(
        category.name, output, len(originals), float(np.abs(diff).mean()), tuple(pairs)
    )
