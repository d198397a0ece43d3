"""Scorers and statistical drift tests, usable as a library without Kafka or the daemon."""

from detectors.errors import DetectorError

__all__ = ["DetectorError"]
