"""The scorer contract: one batch in, one aligned array per output back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextPair(Protocol):
    """What a scorer reads; the daemon's records and plain dataclasses both qualify."""

    @property
    def prompt(self) -> str: ...

    @property
    def response(self) -> str: ...


@runtime_checkable
class Scorer(Protocol):
    """Scores a batch of texts.

    ``outputs`` names what ``score`` returns: ``""`` stands for the scorer's own name,
    any other entry becomes ``<name>_<entry>``. Every returned array has the batch's
    length as its first dimension and keeps the input order. Shape ``(n,)`` is a score,
    one float per record; shape ``(n, d)`` is a vector per record (an embedding), which
    the daemon keeps as a bounded per-window sample rather than per record.
    """

    outputs: tuple[str, ...]

    def score(self, items: Sequence[TextPair]) -> Mapping[str, np.ndarray]: ...


def output_names(name: str, scorer: Scorer) -> tuple[str, ...]:
    """Full score names of ``scorer`` registered under ``name``."""
    return tuple(name if suffix == "" else f"{name}_{suffix}" for suffix in scorer.outputs)
