from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from detectors.errors import DetectorError
from detectors.scorers.torch.batching import BatchRunner, pad_right
from detectors.scorers.torch.cache import ModelCache
from detectors.scorers.torch.runtime import autocast_dtype, resolve_device


def _runner(batch_size: int = 4) -> BatchRunner:
    return BatchRunner(
        device="cpu", batch_size=batch_size, precision="auto", threads=None, name="t"
    )


def _identity_run(runner: BatchRunner, rows: list[list[int]]) -> tuple[np.ndarray, list[int]]:
    """Runs rows through a forward that returns each row's sum and its padded width."""
    widths: list[int] = []

    def prepare(indices: np.ndarray) -> dict[str, torch.Tensor]:
        ids, mask = pad_right([rows[i] for i in indices], 0)
        return {"ids": ids, "mask": mask}

    def forward(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        widths.append(inputs["ids"].shape[1])
        return {"sum": (inputs["ids"] * inputs["mask"]).sum(dim=1).float()}

    return runner.run([len(r) for r in rows], prepare, forward)["sum"], widths


def test_order_is_restored_and_each_batch_is_padded_to_its_own_longest_row() -> None:
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(1, 9, size=int(n))) for n in rng.integers(1, 60, size=23)]
    sums, widths = _identity_run(_runner(batch_size=5), rows)
    np.testing.assert_array_equal(sums, [sum(r) for r in rows])
    assert len(widths) == 5
    assert sum(widths) < 5 * max(len(r) for r in rows)  # bucketing, not global padding


def test_out_of_memory_halves_the_batch_and_keeps_every_record() -> None:
    runner = _runner(batch_size=8)
    rows = [[i + 1] for i in range(8)]

    def prepare(indices: np.ndarray) -> dict[str, torch.Tensor]:
        return {"ids": torch.tensor([rows[i] for i in indices])}

    def forward(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if inputs["ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("fake")
        return {"x": inputs["ids"][:, 0].float()}

    out = runner.run([1] * 8, prepare, forward)["x"]
    np.testing.assert_array_equal(out, np.arange(1, 9))
    assert runner.stats.oom_splits == 3  # 8 -> 4+4 -> 2+2+2+2
    assert runner.stats.records == 8


def test_out_of_memory_on_a_single_row_is_raised() -> None:
    def forward(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise torch.OutOfMemoryError("fake")

    with pytest.raises(torch.OutOfMemoryError):
        _runner().run([1], lambda idx: {"ids": torch.zeros(len(idx), 1)}, forward)


def test_devices_resolve_and_a_missing_cuda_device_fails_naming_the_option() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DetectorError, match="device='cuda:1'"):
            resolve_device("cuda:1")
    assert autocast_dtype(torch.device("cpu"), "auto") is None
    assert autocast_dtype(torch.device("cuda", 0), "fp16") is torch.float16


def test_model_cache_loads_once_and_frees_with_the_last_user() -> None:
    cache = ModelCache()

    class Model:
        pass

    first = cache.get("k", Model)
    assert cache.get("k", Model) is first
    assert cache.loads == 1
    del first
    cache.get("k", Model)
    assert cache.loads == 2
