"""Small deterministic scorers for tests of the daemon's plumbing (no model weights)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from detectors.scorers import TextPair


class PromptVectors:
    """An 8-d vector per prompt: a one-hot of the prompt's hash bucket plus seeded noise,
    so records about one topic cluster together and a new topic forms a new cluster."""

    outputs: tuple[str, ...] = ("prompt",)

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        rows = []
        for item in items:
            seed = zlib.crc32(item.prompt.encode())
            rng = np.random.default_rng([seed, zlib.crc32(item.response.encode())])
            row = rng.normal(0, 0.3, 8)
            row[seed % 8] += 3.0
            rows.append(row)
        return {"prompt": np.array(rows)}


class SlowTokens:
    """Response length, at a fixed cost per batch: scoring slower than the input arrives."""

    outputs: tuple[str, ...] = ("",)

    def __init__(self, seconds_per_batch: float = 0.05):
        self.seconds_per_batch = seconds_per_batch

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]:
        import time

        time.sleep(self.seconds_per_batch)
        return {"": np.array([float(len(item.response)) for item in items])}
