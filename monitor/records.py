"""The record contract: raw bytes in, a validated ``Record`` or a ``DeadLetter`` out.

Hand-written rather than a pydantic model because it runs once per message on the hot path;
every failure names its reason so nothing is dropped silently.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

# Event times outside this range are refused: year 2000 .. year 2200 in epoch milliseconds.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 7_258_118_400_000


MAX_ID_CHARS = 512


class DeadLetterReason(enum.StrEnum):
    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    INVALID_METADATA = "invalid_metadata"
    SCORING_FAILED = "scoring_failed"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message came from: ``partition`` names a Kafka topic-partition or a file."""

    partition: str
    offset: int


@dataclass(frozen=True, slots=True)
class RawMessage:
    value: bytes
    position: Position
    next_offset: int  # where to resume once this message is accounted for


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    ts_ms: int
    model: str
    prompt: str
    response: str
    position: Position
    metadata: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    context: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be accounted for as a scored record, kept with its bytes."""

    reason: DeadLetterReason
    detail: str
    raw: bytes
    position: Position
    ts_ms: int | None = None  # event time when it could still be read, for window attribution
    record_id: str | None = None


class _Invalid(Exception):
    def __init__(self, reason: DeadLetterReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_REQUIRED_STRINGS = ("id", "model", "prompt", "response")


def parse(
    message: RawMessage, *, max_bytes: int, max_ts_ms: int | None = None
) -> Record | DeadLetter:
    """Validate one message. ``max_ts_ms`` refuses event times too far in the future."""
    raw = message.value
    if len(raw) > max_bytes:
        return DeadLetter(
            DeadLetterReason.TOO_LARGE,
            f"message exceeds the limit of {max_bytes} bytes",
            raw,
            message.position,
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = DeadLetterReason.INVALID_JSON if _is_utf8(raw) else DeadLetterReason.INVALID_UTF8
        return DeadLetter(reason, str(exc)[:200], raw, message.position)
    if not isinstance(doc, dict):
        return DeadLetter(
            DeadLetterReason.NOT_AN_OBJECT,
            f"expected a JSON object, got {_json_type(doc)}",
            raw,
            message.position,
        )
    ts_ms: int | None = None
    try:
        ts_ms = _timestamp(doc, max_ts_ms)
        return _record(doc, ts_ms, message.position)
    except _Invalid as exc:
        record_id = doc.get("id") if isinstance(doc.get("id"), str) else None
        return DeadLetter(exc.reason, exc.detail, raw, message.position, ts_ms, record_id)


def _record(doc: dict[str, Any], ts_ms: int, position: Position) -> Record:
    for key in _REQUIRED_STRINGS:
        if key not in doc:
            raise _Invalid(DeadLetterReason.MISSING_FIELD, f"missing required field {key!r}")
        if not isinstance(doc[key], str):
            raise _Invalid(
                DeadLetterReason.WRONG_TYPE, f"{key!r} must be a string, got {_json_type(doc[key])}"
            )
    if not doc["id"]:
        raise _Invalid(DeadLetterReason.WRONG_TYPE, "'id' must not be empty")
    if len(doc["id"]) > MAX_ID_CHARS:
        # Ids are index keys (PostgreSQL refuses index entries past about 2.7 kB).
        raise _Invalid(
            DeadLetterReason.WRONG_TYPE, f"'id' is longer than {MAX_ID_CHARS} characters"
        )
    context = doc.get("context")
    if context is not None and not isinstance(context, str):
        raise _Invalid(
            DeadLetterReason.WRONG_TYPE, f"'context' must be a string, got {_json_type(context)}"
        )
    return Record(
        id=doc["id"],
        ts_ms=ts_ms,
        model=doc["model"],
        prompt=doc["prompt"],
        response=doc["response"],
        position=position,
        metadata=_metadata(doc.get("metadata")),
        context=context,
    )


def _timestamp(doc: dict[str, Any], max_ts_ms: int | None) -> int:
    if "ts" not in doc:
        raise _Invalid(DeadLetterReason.MISSING_FIELD, "missing required field 'ts'")
    value = doc["ts"]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Invalid(
            DeadLetterReason.WRONG_TYPE,
            f"'ts' must be an RFC 3339 string or epoch milliseconds, got {_json_type(value)}",
        )
    if isinstance(value, str):
        ts_ms = _rfc3339_ms(value)
    else:
        if not math.isfinite(value):
            raise _Invalid(DeadLetterReason.INVALID_TIMESTAMP, f"'ts' is not finite: {value!r}")
        ts_ms = int(value)
    upper = MAX_TS_MS if max_ts_ms is None else min(MAX_TS_MS, max_ts_ms)
    if not MIN_TS_MS <= ts_ms <= upper:
        raise _Invalid(
            DeadLetterReason.TIMESTAMP_OUT_OF_RANGE,
            f"'ts' {value!r} is outside the accepted range ({MIN_TS_MS}..{upper} ms)",
        )
    return ts_ms


def _rfc3339_ms(text: str) -> int:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _Invalid(
            DeadLetterReason.INVALID_TIMESTAMP, f"'ts' is not an RFC 3339 timestamp: {text[:64]!r}"
        ) from None
    if parsed.tzinfo is None:
        raise _Invalid(DeadLetterReason.INVALID_TIMESTAMP, f"'ts' has no UTC offset: {text[:64]!r}")
    return int(parsed.astimezone(UTC).timestamp() * 1000)


def _metadata(value: Any) -> dict[str, str | int | float | bool | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(
            DeadLetterReason.INVALID_METADATA,
            f"'metadata' must be an object, got {_json_type(value)}",
        )
    for key, item in value.items():
        if item is not None and not isinstance(item, str | int | float | bool):
            raise _Invalid(
                DeadLetterReason.INVALID_METADATA,
                f"metadata[{key[:64]!r}] must be a scalar, got {_json_type(item)}",
            )
    return value


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
