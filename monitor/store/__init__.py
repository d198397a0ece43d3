"""Durable window state behind one small interface."""

from __future__ import annotations

from monitor.config import StoreConfig, WindowsConfig
from monitor.store.base import (
    BatchOutcome,
    BatchWrite,
    OutboxItem,
    SavedState,
    ScoredRecord,
    Store,
)
from monitor.store.sqlite import SQLiteStore


def open_store(config: StoreConfig, windows: WindowsConfig) -> Store:
    """The configured store: PostgreSQL (psycopg, loaded only then) for several workers,
    SQLite for one; a SQLite path of ``:memory:`` keeps it in memory."""
    if config.type == "postgres":
        from monitor.store.postgres import PostgresStore

        return PostgresStore(
            config.connection_url(),
            lateness_ms=int(windows.allowed_lateness * 1000),
            partial_after_ms=int(windows.partial_after * 1000),
            vector_sample=config.vector_sample,
            example_chars=config.example_chars,
        )
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
