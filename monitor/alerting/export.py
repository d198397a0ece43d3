"""Retraining datasets: the records that justify a trigger, as JSON lines (and Parquet).

What qualifies: kept texts of records with a score past ``triggers.export`` thresholds,
records humans flagged with one of ``feedback_labels`` (with texts when kept), and the
example prompts of clusters that grew in a drifted window's embedding explanation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from monitor.config import ExportConfig
from monitor.store import Store

log = logging.getLogger(__name__)


def notable(config: ExportConfig) -> Callable[[Mapping[str, float]], bool]:
    """The predicate deciding which records' texts the store keeps for exports."""

    def keep(scores: Mapping[str, float]) -> bool:
        return any(scores.get(k, float("nan")) > v for k, v in config.score_above.items()) or any(
            scores.get(k, float("nan")) < v for k, v in config.score_below.items()
        )

    return keep


def export_dataset(
    store: Store,
    config: ExportConfig,
    trigger_id: str,
    window_starts: Sequence[int],
    drift_results: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Write ``<trigger_id>.jsonl`` (and ``.parquet``); returns paths and row count."""
    flagged = dict(store.flagged_record_ids(config.feedback_labels, window_starts))
    rows: list[dict[str, Any]] = []
    for record in store.records_with_texts(window_starts, list(flagged)):
        reasons = [
            f"{k}>{v}" for k, v in config.score_above.items() if record["scores"].get(k, -1e300) > v
        ] + [
            f"{k}<{v}" for k, v in config.score_below.items() if record["scores"].get(k, 1e300) < v
        ]
        if record["id"] in flagged:
            reasons.append(f"human:{flagged[record['id']]}")
        if reasons:
            rows.append({**record, "reasons": reasons})
    for drift in drift_results:
        for field, section in drift.get("explanation", {}).get("embeddings", {}).items():
            for cluster in section.get("clusters", []):
                if cluster.get("direction") == "grew":
                    reason = f"drift:{field}:cluster{cluster['cluster']}"
                    rows.extend(
                        {"prompt": text, "reasons": [reason]}
                        for text in cluster.get("examples", [])
                    )
    rows = rows[: config.max_records]
    config.directory.mkdir(parents=True, exist_ok=True)
    safe_id = trigger_id.replace(":", "_")
    jsonl = config.directory / f"{safe_id}.jsonl"
    _atomic_write(jsonl, b"".join(orjson.dumps(row) + b"\n" for row in rows))
    result: dict[str, Any] = {"path": str(jsonl), "rows": len(rows), "format": "jsonl"}
    if config.parquet and rows:
        result["parquet_path"] = _parquet(rows, config.directory / f"{safe_id}.parquet")
    return result


def _parquet(rows: list[dict[str, Any]], path: Path) -> str | None:
    try:
        import pandas as pd

        frame = pd.DataFrame([{k: _flat(v) for k, v in row.items()} for row in rows])
        partial = path.with_name(f".{path.name}.partial")
        frame.to_parquet(partial, index=False)
    except ImportError:
        log.warning("no Parquet engine installed; the export is JSON lines only")
        return None
    os.replace(partial, path)
    return str(path)


def _flat(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value


def _atomic_write(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
