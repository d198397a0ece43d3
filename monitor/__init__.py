"""alignwatch daemon: sources, windows, scheduling, store, metrics and CLI."""

from monitor.errors import AlignwatchError, ConfigError

__all__ = ["AlignwatchError", "ConfigError"]
