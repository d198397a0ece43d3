"""Where and how models run: device, precision and CPU threads, chosen once at start-up."""

from __future__ import annotations

import logging
import os
from typing import Annotated, Literal

import torch
from pydantic import Field

from detectors.errors import DetectorError

log = logging.getLogger(__name__)

DeviceSpec = Annotated[str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
BatchSize = Annotated[int, Field(ge=1, le=8192)]
Threads = Annotated[int, Field(ge=1, le=1024)]

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks the current CUDA device when there is one; asking for a CUDA device
    that is not there fails at start-up instead of silently running on CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DetectorError(f"device={spec!r}: CUDA is not available on this machine")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DetectorError(
                f"device={spec!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        device = torch.device("cuda", index)
    return device


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32. ``auto`` is bf16 on CUDA where the
    GPU supports it (fp16 otherwise) and fp32 on CPU, where reduced precision is rarely
    faster and changes the scores."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return _DTYPES[precision]


def configure_cpu_threads(threads: int | None) -> None:
    """Set torch's intra-op threads (process-wide). ``None`` keeps torch's choice but never
    more threads than the CPUs this process may run on (containers often allow fewer)."""
    if threads is None:
        try:
            available = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            available = os.cpu_count() or 1
        threads = min(torch.get_num_threads(), available)
    if torch.get_num_threads() != threads:
        log.info("torch intra-op threads: %d -> %d", torch.get_num_threads(), threads)
        torch.set_num_threads(threads)
