"""Sources by config name."""

from __future__ import annotations

from collections.abc import Mapping

from detectors.registry import resolve
from monitor.config import Config
from monitor.sources.base import Source

SOURCES: dict[str, str] = {
    "file": "monitor.sources.file:from_config",
    "kafka": "monitor.sources.kafka:from_config",
}


def open_source(config: Config, start_positions: Mapping[str, int]) -> Source:
    """The configured source; a file resumes from the store's positions, Kafka from its group."""
    factory = resolve(SOURCES, config.source.type, "source")
    return factory(config, start_positions)


__all__ = ["SOURCES", "Source", "open_source"]
