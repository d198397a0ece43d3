"""Length-bucketed batching: the part of scoring that decides throughput.

A micro-batch is sorted by length, cut into batches, each padded only to its own longest
row, run, and scattered back to input order. The sort key is the character length, a
proxy for token length that needs no tokenising, so a worker thread can tokenise, pad
and pin batch k+1 while the device runs batch k. A CUDA out-of-memory error splits the
batch in half and retries, down to single rows, so no record is dropped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import torch

from detectors.scorers.torch.runtime import autocast_dtype, configure_cpu_threads, resolve_device

log = logging.getLogger(__name__)

Inputs = dict[str, torch.Tensor]
Prepare = Callable[[np.ndarray], Inputs]
Forward = Callable[[Inputs], Mapping[str, torch.Tensor]]


@dataclass
class ScoringStats:
    """Running counters of one scorer, for the daemon's metrics."""

    records: int = 0
    batches: int = 0
    truncated: int = 0
    oom_splits: int = 0


class BatchRunner:
    """Runs a model over a micro-batch in length-sorted batches on one device."""

    def __init__(
        self,
        *,
        device: str,
        batch_size: int,
        precision: str,
        threads: int | None,
        name: str,
    ) -> None:
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            configure_cpu_threads(threads)
        self.batch_size = batch_size
        self.name = name
        self.stats = ScoringStats()
        self._dtype = autocast_dtype(self.device, precision)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-prepare")

    def run(
        self, lengths: Sequence[int], prepare: Prepare, forward: Forward
    ) -> dict[str, np.ndarray]:
        """Outputs of ``forward`` for rows ``0..len(lengths)-1``, in input order.

        ``prepare(indices)`` builds CPU input tensors for those rows (on the worker
        thread); ``forward`` maps device tensors to named ``(rows, ...)`` outputs.
        """
        n = len(lengths)
        order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
        chunks = [order[start : start + self.batch_size] for start in range(0, n, self.batch_size)]
        results: dict[str, np.ndarray] = {}
        pending = self._pool.submit(self._prepare, prepare, chunks[0]) if chunks else None
        try:
            for k, chunk in enumerate(chunks):
                inputs = pending.result()  # type: ignore[union-attr]
                if k + 1 < len(chunks):
                    pending = self._pool.submit(self._prepare, prepare, chunks[k + 1])
                for name, values in self._forward(forward, inputs).items():
                    if name not in results:
                        results[name] = np.empty((n, *values.shape[1:]), dtype=np.float32)
                    results[name][chunk] = values
                self.stats.batches += 1
        finally:
            # After a failure, let the prefetch finish before the caller retries: tokenizers
            # shared with other scorers must not be used from two threads at once.
            if pending is not None:
                wait([pending])
        self.stats.records += n
        return results

    def _prepare(self, prepare: Prepare, indices: np.ndarray) -> Inputs:
        inputs = prepare(indices)
        if self.device.type == "cuda":
            inputs = {key: tensor.pin_memory() for key, tensor in inputs.items()}
        return inputs

    def _forward(self, forward: Forward, inputs: Inputs) -> dict[str, np.ndarray]:
        rows = next(iter(inputs.values())).shape[0]
        try:
            return self._call(forward, inputs)
        except torch.OutOfMemoryError:
            if rows == 1:
                raise
        # Retried outside the except block so the failed attempt's tensors can be freed.
        self.stats.oom_splits += 1
        log.warning("%s: out of memory on a batch of %d rows; halving it", self.name, rows)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        half = rows // 2
        first = self._forward(forward, {k: v[:half] for k, v in inputs.items()})
        second = self._forward(forward, {k: v[half:] for k, v in inputs.items()})
        return {key: np.concatenate([first[key], second[key]]) for key in first}

    def _call(self, forward: Forward, inputs: Inputs) -> dict[str, np.ndarray]:
        autocast = (
            torch.autocast(self.device.type, dtype=self._dtype)
            if self._dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            on_device = {k: v.to(self.device, non_blocking=True) for k, v in inputs.items()}
            outputs = forward(on_device)
            return {key: value.float().cpu().numpy() for key, value in outputs.items()}


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded on the right to the longest row, and the attention mask."""
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)
