"""Per-record inputs of the bias statistics: response sentiment and identity mentions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, validate_call

from detectors.bias.lexicon import load_lexicon
from detectors.errors import DetectorError
from detectors.scorers.base import TextPair

TextField = Literal["prompt", "response"]


class Sentiment:
    """VADER compound polarity of the response (or prompt), from -1 to 1.

    VADER's rules are English-only: other languages mostly score 0. Texts are cut at
    ``max_chars`` because its cost grows with length and sentiment is set early.
    """

    outputs: tuple[str, ...] = ("",)

    @validate_call
    def __init__(
        self,
        *,
        field: TextField = "response",
        max_chars: Annotated[int, Field(ge=1)] = 5000,
    ) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.field = field
        self.max_chars = max_chars
        self._vader = SentimentIntensityAnalyzer()

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        polarity = self._vader.polarity_scores
        values = np.fromiter(
            (polarity(getattr(i, self.field)[: self.max_chars])["compound"] for i in items),
            dtype=np.float64,
            count=len(items),
        )
        return {"": values}


class IdentityMentions:
    """1.0 per identity group the prompt (or response) mentions, one output per
    ``<category>_<group>`` of the lexicon, so the outputs are fixed by the lexicon file."""

    @validate_call
    def __init__(
        self,
        *,
        lexicon: Annotated[str, Field(min_length=1)] | None = None,
        field: TextField = "prompt",
    ) -> None:
        self.lexicon = load_lexicon(lexicon)
        self.field = field
        self.groups = self.lexicon.outputs()
        self.outputs: tuple[str, ...] = tuple(f"{c}_{g}" for c, g in self.groups)
        if len(set(self.outputs)) != len(self.outputs):
            raise DetectorError(f"lexicon={lexicon!r}: two category_group names coincide")
        self._row = {key: row for row, key in enumerate(self.groups)}

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        found = np.zeros((len(self.outputs), len(items)), dtype=np.float64)
        for column, item in enumerate(items):
            text = getattr(item, self.field)
            for category in self.lexicon.categories.values():
                for group in category.mentioned(text):
                    found[self._row[category.name, group], column] = 1.0
        return dict(zip(self.outputs, found, strict=True))
