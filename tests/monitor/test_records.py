from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.records import DeadLetter, DeadLetterReason, Position, RawMessage, Record, parse
from tests.generate import malformed_lines

POS = Position("input.jsonl", 0)
VALID = {
    "id": "r1",
    "ts": "2026-11-02T09:00:00.250Z",
    "model": "m",
    "prompt": "hi",
    "response": "hello",
}


def _parse(doc: object, **kwargs: int) -> Record | DeadLetter:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return parse(
        RawMessage(raw, POS, len(raw)), max_bytes=kwargs.pop("max_bytes", 10_000), **kwargs
    )


def test_valid_record_with_rfc3339_and_metadata_keeps_unknown_fields_out():
    record = _parse({**VALID, "metadata": {"segment": "pro", "n": 3}, "extra": [1, 2]})
    assert isinstance(record, Record)
    assert record.ts_ms == 1_793_610_000_250
    assert record.metadata == {"segment": "pro", "n": 3}
    assert record.context is None


def test_epoch_milliseconds_and_offsets_are_equivalent():
    epoch = _parse({**VALID, "ts": 1_793_610_000_250})
    offset = _parse({**VALID, "ts": "2026-11-02T10:00:00.250+01:00"})
    assert isinstance(epoch, Record) and isinstance(offset, Record)
    assert epoch.ts_ms == offset.ts_ms == 1_793_610_000_250


@pytest.mark.parametrize(("raw", "reason"), list(malformed_lines(7)))
def test_each_malformed_kind_gets_its_reason(raw: bytes, reason: str):
    letter = _parse(raw)
    assert isinstance(letter, DeadLetter)
    assert letter.reason.value == reason
    assert letter.raw == raw
    assert letter.position == POS
    assert letter.detail


@pytest.mark.parametrize(
    ("doc", "reason", "fragment"),
    [
        ({**VALID, "ts": "2026-11-02T09:00:00"}, DeadLetterReason.INVALID_TIMESTAMP, "UTC offset"),
        ({**VALID, "ts": True}, DeadLetterReason.WRONG_TYPE, "'ts'"),
        ({**VALID, "ts": 5}, DeadLetterReason.TIMESTAMP_OUT_OF_RANGE, "outside"),
        ({**VALID, "id": ""}, DeadLetterReason.WRONG_TYPE, "'id'"),
        ({**VALID, "id": "x" * 513}, DeadLetterReason.WRONG_TYPE, "longer than 512"),
        ({**VALID, "context": 3}, DeadLetterReason.WRONG_TYPE, "'context'"),
        ({**VALID, "metadata": [1]}, DeadLetterReason.INVALID_METADATA, "object"),
        (
            {k: v for k, v in VALID.items() if k != "response"},
            DeadLetterReason.MISSING_FIELD,
            "response",
        ),
        ("just a string", DeadLetterReason.NOT_AN_OBJECT, "string"),
    ],
)
def test_reason_and_detail(doc: object, reason: DeadLetterReason, fragment: str):
    letter = _parse(doc)
    assert isinstance(letter, DeadLetter)
    assert letter.reason is reason
    assert fragment in letter.detail


def test_too_large_is_refused_before_parsing():
    letter = _parse({**VALID, "response": "x" * 500}, max_bytes=100)
    assert isinstance(letter, DeadLetter) and letter.reason is DeadLetterReason.TOO_LARGE


def test_future_timestamps_beyond_the_limit_are_refused():
    letter = _parse({**VALID, "ts": 1_793_610_000_250}, max_ts_ms=1_793_610_000_000)
    assert isinstance(letter, DeadLetter)
    assert letter.reason is DeadLetterReason.TIMESTAMP_OUT_OF_RANGE


def test_dead_letter_keeps_the_event_time_when_only_another_field_is_bad():
    letter = _parse({**VALID, "model": None})
    assert isinstance(letter, DeadLetter)
    assert letter.ts_ms == 1_793_610_000_250 and letter.record_id == "r1"


def test_deeply_nested_json_is_a_dead_letter_not_a_crash():
    letter = _parse(b"[" * 2_000 + b"]" * 2_000)
    assert isinstance(letter, DeadLetter) and letter.reason is DeadLetterReason.INVALID_JSON


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes):
    assert isinstance(_parse(raw), Record | DeadLetter)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "ts", "model", "prompt", "response", "metadata", "context", "x"]),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False)
            | st.text(),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
            max_leaves=8,
        ),
    )
)
def test_arbitrary_objects_either_validate_or_dead_letter(doc: dict[str, object]):
    result = _parse(doc)
    if isinstance(result, Record):
        assert all(isinstance(doc[k], str) for k in ("id", "model", "prompt", "response"))
    else:
        assert result.reason in DeadLetterReason
