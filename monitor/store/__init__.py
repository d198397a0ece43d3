"""Durable window state behind one small interface."""

from __future__ import annotations

from monitor.config import StoreConfig
from monitor.store.base import (
    BatchOutcome,
    BatchWrite,
    OutboxItem,
    SavedState,
    ScoredRecord,
    Store,
)
from monitor.store.sqlite import SQLiteStore


def open_store(config: StoreConfig) -> Store:
    """The configured store; a path of ``:memory:`` keeps it in memory."""
    return SQLiteStore(
        config.path,
        vector_sample=config.vector_sample,
        example_chars=config.example_chars,
    )


__all__ = [
    "BatchOutcome",
    "BatchWrite",
    "OutboxItem",
    "SavedState",
    "ScoredRecord",
    "Store",
    "open_store",
]
