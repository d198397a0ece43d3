"""One root exception for the daemon, so callers can catch ours and nothing else."""

from __future__ import annotations


class AlignwatchError(Exception):
    """Base of every error the daemon raises on purpose."""


class ConfigError(AlignwatchError):
    """The configuration is invalid; the message names the offending key."""


class Unavailable(AlignwatchError):
    """A broker the daemon needs cannot be reached yet; waiting for it may be all it takes."""


class StoreError(AlignwatchError):
    """The store could not persist or read state; consuming must stop until it can."""


class AlreadyEvaluated(StoreError):
    """Another evaluator saved this window's result first (several workers, one store)."""
