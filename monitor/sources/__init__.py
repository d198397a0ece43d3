"""Sources by config name."""

from __future__ import annotations

from detectors.registry import resolve
from monitor.config import Config
from monitor.sources.base import Source, StoredPositions

SOURCES: dict[str, str] = {
    "file": "monitor.sources.file:from_config",
    "kafka": "monitor.sources.kafka:from_config",
}


def open_source(config: Config, stored_positions: StoredPositions) -> Source:
    """The configured source. It starts each partition it is given at the position
    ``stored_positions`` returns for it (the store's), else where the source would."""
    factory = resolve(SOURCES, config.source.type, "source")
    return factory(config, stored_positions)


__all__ = ["SOURCES", "Source", "StoredPositions", "open_source"]
