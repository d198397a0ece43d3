"""The reference a window is tested against: a versioned, bounded, immutable snapshot.

Serialised as one compressed ``.npz`` (numpy's zip of arrays) with a JSON metadata entry
carrying the format version; it loads with ``allow_pickle=False``, so a stored reference
can never run code.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import orjson

from detectors.drift.base import subsample_rows
from detectors.errors import DetectorError

FORMAT = "alignwatch.drift.reference/1"


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ReferenceSnapshot:
    """Per-score 1-d samples, per-categorical-field counts and per-name embedding samples.

    Arrays are read-only and the mappings are proxies, so a shared snapshot cannot be
    changed by a test that reads it. ``id`` names the version; ``build_reference`` derives
    it from the content, so the same data always gives the same id.
    """

    id: str
    created_at: datetime
    scores: Mapping[str, np.ndarray]
    categoricals: Mapping[str, Mapping[str, int]]
    embeddings: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise DetectorError("created_at must be timezone-aware")
        scores = {k: _frozen(np.array(v, dtype=np.float64)) for k, v in self.scores.items()}
        counts = {
            k: MappingProxyType({str(c): int(n) for c, n in v.items()})
            for k, v in self.categoricals.items()
        }
        embeddings = {k: _frozen(np.array(v, dtype=np.float32)) for k, v in self.embeddings.items()}
        if any(v.ndim != 1 for v in scores.values()):
            raise DetectorError("reference scores must be 1-d")
        if any(v.ndim != 2 for v in embeddings.values()):
            raise DetectorError("reference embeddings must be 2-d")
        object.__setattr__(self, "scores", MappingProxyType(scores))
        object.__setattr__(self, "categoricals", MappingProxyType(counts))
        object.__setattr__(self, "embeddings", MappingProxyType(embeddings))

    def to_bytes(self) -> bytes:
        """The snapshot as compressed npz bytes (format ``FORMAT``)."""
        meta = {
            "format": FORMAT,
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "scores": list(self.scores),
            "embeddings": list(self.embeddings),
            "categoricals": {k: dict(v) for k, v in self.categoricals.items()},
        }
        arrays: dict[str, Any] = {"meta": np.frombuffer(orjson.dumps(meta), dtype=np.uint8)}
        arrays |= {f"score_{i}": v for i, v in enumerate(self.scores.values())}
        arrays |= {f"embedding_{i}": v for i, v in enumerate(self.embeddings.values())}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceSnapshot:
        """Load bytes from ``to_bytes``; anything else raises DetectorError."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                meta = orjson.loads(archive["meta"].tobytes())
                if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                    found = meta.get("format") if isinstance(meta, dict) else None
                    raise DetectorError(f"not a {FORMAT} reference (format {found!r})")
                scores = {k: archive[f"score_{i}"] for i, k in enumerate(meta["scores"])}
                embeddings = {
                    k: archive[f"embedding_{i}"] for i, k in enumerate(meta["embeddings"])
                }
            return cls(
                id=meta["id"],
                created_at=datetime.fromisoformat(meta["created_at"]),
                scores=scores,
                categoricals=meta["categoricals"],
                embeddings=embeddings,
            )
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise DetectorError(f"unreadable reference snapshot: {exc}") from None


def _rng(seed: int, name: str) -> np.random.Generator:
    """One stream per field, so a field's subsample does not depend on the others."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def content_id(
    scores: Mapping[str, np.ndarray],
    categoricals: Mapping[str, Mapping[str, int]],
    embeddings: Mapping[str, np.ndarray],
) -> str:
    """``ref-`` and 16 hex digits of a SHA-256 over names, values and counts."""
    digest = hashlib.sha256()
    for kind, arrays in (("score", scores), ("embedding", embeddings)):
        for name in sorted(arrays):
            digest.update(f"{kind}:{name}:{arrays[name].shape}".encode())
            digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    counts = {k: dict(v) for k, v in categoricals.items()}
    digest.update(orjson.dumps(counts, option=orjson.OPT_SORT_KEYS))
    return f"ref-{digest.hexdigest()[:16]}"


def build_reference(
    scores: Mapping[str, np.ndarray],
    categoricals: Mapping[str, Sequence[str]],
    embeddings: Mapping[str, np.ndarray] | None = None,
    *,
    max_samples: int = 10_000,
    max_embeddings: int = 2_000,
    seed: int = 0,
    reference_id: str | None = None,
    created_at: datetime | None = None,
) -> ReferenceSnapshot:
    """Snapshot a baseline: finite score values and finite embedding rows, each field
    subsampled without replacement to its cap by a seeded stream of its own (same inputs
    and seed, same snapshot); categorical fields are counted in full."""
    if max_samples < 1 or max_embeddings < 1:
        raise DetectorError("max_samples and max_embeddings must be at least 1")
    sampled_scores: dict[str, np.ndarray] = {}
    for name, values in scores.items():
        array = np.asarray(values, dtype=np.float64).ravel()
        array = array[np.isfinite(array)]
        sampled_scores[name] = subsample_rows(array, max_samples, _rng(seed, name))
    sampled_embeddings: dict[str, np.ndarray] = {}
    for name, rows in (embeddings or {}).items():
        matrix = np.asarray(rows, dtype=np.float32)
        if matrix.ndim != 2:
            raise DetectorError(f"embeddings {name!r} must be 2-d, got shape {matrix.shape}")
        matrix = matrix[np.isfinite(matrix).all(axis=1)]
        sampled_embeddings[name] = subsample_rows(matrix, max_embeddings, _rng(seed, name))
    counts = {name: dict(Counter(str(v) for v in values)) for name, values in categoricals.items()}
    return ReferenceSnapshot(
        id=reference_id or content_id(sampled_scores, counts, sampled_embeddings),
        created_at=created_at or datetime.now(UTC),
        scores=sampled_scores,
        categoricals=counts,
        embeddings=sampled_embeddings,
    )
