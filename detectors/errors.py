"""Root exception of the detectors library."""

from __future__ import annotations


class DetectorError(Exception):
    """Base of every error a scorer or drift test raises on purpose."""
