"""Shared fixtures: config files on disk, and one real Kafka broker per test session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "config" / "sample" / "records.jsonl"


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config into tmp_path; ``patch`` is merged over a small file-source default."""

    def write(patch: dict[str, Any] | None = None, name: str = "config.yaml") -> Path:
        document = {
            "source": {"type": "file", "file": {"path": "input.jsonl"}},
            "scorers": [{"type": "response_tokens"}, {"type": "refusal"}],
            "windows": {"size": "5m", "allowed_lateness": "1m"},
            "batch": {"max_size": 64, "max_wait": "50ms"},
            "evaluation": {"interval": "200ms"},
            "store": {"path": "store.db"},
            "dead_letter": {"path": "dead_letters.jsonl"},
            "metrics": {"port": 0},
            "api": {"port": 0},
            "logging": {"level": "WARNING"},
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(deep_merge(document, patch or {})))
        return path

    return write


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Any]:
    """A real Apache Kafka broker (KRaft, one node) for the whole session.

    Never skipped: a machine that cannot start it must fail the suite, not hide it.
    """
    from tests.broker.kafka_broker import KafkaBroker

    with KafkaBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server (Debian's packages) for the whole session; never skipped."""
    from tests.postgres_server import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """The URL of a fresh database on the session's server."""
    return postgres_server.new_database()
