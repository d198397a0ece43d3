"""Durable window state behind one small interface."""

from __future__ import annotations

from monitor.config import StoreConfig
from monitor.store.base import BatchOutcome, BatchWrite, SavedState, ScoredRecord, Store
from monitor.store.sqlite import SQLiteStore


def open_store(config: StoreConfig, *, path_override: str | None = None) -> Store:
    """The configured store; ``path_override`` (e.g. ``":memory:"``) replaces its path."""
    return SQLiteStore(path_override or config.path)


__all__ = ["BatchOutcome", "BatchWrite", "SavedState", "ScoredRecord", "Store", "open_store"]
