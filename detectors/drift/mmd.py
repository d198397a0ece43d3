"""Kernel two-sample test on embeddings: RBF-kernel MMD with a permutation p-value.

Small pooled samples use the exact kernel; larger ones use random Fourier features,
whose cost grows linearly in the sample size instead of quadratically. Either way the
p-value is an exact permutation p-value of the statistic computed, so calibration does
not depend on the approximation; the approximation's error against the exact MMD^2 is
reported per result as ``details["approx_std_error"]``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, validate_call

from detectors.drift.base import (
    Kind,
    TestResult,
    permutation_p_value,
    sampled_matrices,
)
from detectors.errors import DetectorError


class MMD:
    """Maximum mean discrepancy with a median-heuristic RBF kernel.

    ``method="auto"`` is exact up to ``exact_max`` pooled rows, Fourier features above.
    ``max_samples`` caps each side (a seeded subsample), bounding time and memory.
    The effect size is sqrt(max(MMD^2 - mean null MMD^2, 0)): a kernel distance between
    the two mean embeddings with the finite-sample bias removed, in [0, sqrt(2)].
    """

    name = "mmd"
    kind: Kind = "embedding"

    @validate_call
    def __init__(
        self,
        *,
        permutations: Annotated[int, Field(ge=19, le=100_000)] = 500,
        method: Literal["auto", "exact", "fourier"] = "auto",
        exact_max: Annotated[int, Field(ge=0)] = 1000,
        frequencies: Annotated[int, Field(ge=16, le=65_536)] = 128,
        max_samples: Annotated[int, Field(ge=10)] | None = 10_000,
        bandwidth_sample: Annotated[int, Field(ge=10)] = 500,
        device: Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")] = "auto",
        seed: int = 0,
    ):
        self.permutations = permutations
        self.method = method
        self.exact_max = exact_max
        self.frequencies = frequencies
        self.max_samples = max_samples
        self.bandwidth_sample = bandwidth_sample
        self.device = device
        self.seed = seed

    def test(self, reference: Any, window: Any) -> TestResult:
        rng = np.random.default_rng(self.seed)
        ref, win = sampled_matrices(reference, window, self.max_samples, rng)
        pooled = ref.shape[0] + win.shape[0]
        exact = self.method == "exact" or (self.method == "auto" and pooled <= self.exact_max)
        try:
            from detectors.drift import _mmd_torch
        except ImportError as exc:  # torch is a core dependency; say so if it is missing
            raise DetectorError("the mmd drift test needs torch: pip install torch") from exc
        outcome = _mmd_torch.permutation_null(
            ref,
            win,
            permutations=self.permutations,
            frequencies=None if exact else self.frequencies,
            bandwidth_sample=self.bandwidth_sample,
            device=self.device,
            seed=self.seed,
        )
        effect = float(np.sqrt(max(outcome.observed - float(outcome.null.mean()), 0.0)))
        details: dict[str, Any] = {
            "method": "exact" if exact else "fourier",
            "gamma": outcome.gamma,
            "permutations": self.permutations,
            "n_reference": int(ref.shape[0]),
            "n_window": int(win.shape[0]),
        }
        if outcome.std_error is not None:
            details["frequencies"] = self.frequencies
            details["approx_std_error"] = outcome.std_error
        p_value = permutation_p_value(outcome.observed, outcome.null)
        return TestResult(outcome.observed, p_value, effect, details=details)
