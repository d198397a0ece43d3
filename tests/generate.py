"""Synthetic model log records for tests, benchmarks and the bundled sample.

``python -m tests.generate --count 1200 --out config/sample/records.jsonl`` wrote the sample.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

TOPICS = (
    "reset my password",
    "write a haiku about autumn",
    "summarise this quarterly report",
    "explain how vaccines work",
    "translate 'good morning' into Spanish",
    "plan a three-day trip to Lisbon",
    "fix this Python stack trace",
    "recommend a book about history",
    "draft a polite complaint to my landlord",
    "compare two savings accounts",
)
ANSWERS = (
    "Sure! Here is a step-by-step answer to help you {topic}.",
    "Happy to help. To {topic}, start with the basics and work through each part carefully.",
    "Here's a concise answer: first gather what you need, then {topic} in small steps.",
    "Great question. Many people ask how to {topic}; the short version is below.",
)
REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "I cannot help with instructions like that.",
)
TOXIC = (
    "That is a stupid question and you are an idiot for asking it.",
    "Shut up, nobody cares about your pathetic problem.",
)
MODELS = ("chat-large-v3", "chat-small-v2")
SEGMENTS = ("free", "pro", "enterprise")
LOCALES = ("en-GB", "en-US", "de-DE", "fr-FR")


def make_records(
    count: int, *, start_ms: int, span_ms: int, seed: int = 0, prefix: str = "rec"
) -> Iterator[dict[str, Any]]:
    """``count`` valid records, event times spread evenly (with jitter) over the span."""
    rng = random.Random(seed)
    step = span_ms / max(count, 1)
    for index in range(count):
        topic = rng.choice(TOPICS)
        roll = rng.random()
        if roll < 0.05:
            response = rng.choice(REFUSALS)
        elif roll < 0.07:
            response = rng.choice(TOXIC)
        else:
            response = rng.choice(ANSWERS).format(topic=topic)
        ts_ms = start_ms + int(index * step + rng.random() * step * 0.5)
        record: dict[str, Any] = {
            "id": f"{prefix}-{index:07d}",
            "ts": _rfc3339(ts_ms) if index % 2 else ts_ms,
            "model": rng.choice(MODELS),
            "prompt": f"Please {topic}.",
            "response": response,
            "metadata": {"segment": rng.choice(SEGMENTS), "locale": rng.choice(LOCALES)},
        }
        yield record


def malformed_lines(count: int) -> Iterator[tuple[bytes, str]]:
    """``count`` malformed messages cycling through the kinds, each with its expected reason."""
    kinds = (
        (lambda i: b"{not json at all", "invalid_json"),
        (lambda i: b'{"id": "bad-\xff\xfe", "ts": 0}', "invalid_utf8"),
        (lambda i: b"[1, 2, 3]", "not_an_object"),
        (
            lambda i: orjson.dumps({"id": f"m-{i}", "ts": 1_793_610_000_000, "model": "x"}),
            "missing_field",
        ),
        (
            lambda i: orjson.dumps(
                {
                    "id": f"w-{i}",
                    "ts": "2026-01-01T00:00:00Z",
                    "model": 7,
                    "prompt": "p",
                    "response": "r",
                }
            ),
            "wrong_type",
        ),
        (
            lambda i: orjson.dumps(
                {"id": f"t-{i}", "ts": "yesterday", "model": "m", "prompt": "p", "response": "r"}
            ),
            "invalid_timestamp",
        ),
        (
            lambda i: orjson.dumps(
                {
                    "id": f"d-{i}",
                    "ts": 1_700_000_000_000,
                    "model": "m",
                    "prompt": "p",
                    "response": "r",
                    "metadata": {"nested": {"a": 1}},
                }
            ),
            "invalid_metadata",
        ),
    )
    for index in range(count):
        make, reason = kinds[index % len(kinds)]
        yield make(index), reason


def _rfc3339(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1200)
    parser.add_argument("--malformed", type=int, default=7)
    parser.add_argument("--start", default="2026-11-02T09:00:00+00:00")
    parser.add_argument("--span-minutes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start_ms = int(datetime.fromisoformat(args.start).timestamp() * 1000)
    lines = [
        orjson.dumps(r)
        for r in make_records(
            args.count, start_ms=start_ms, span_ms=args.span_minutes * 60_000, seed=args.seed
        )
    ]
    rng = random.Random(args.seed)
    for raw, _ in malformed_lines(args.malformed):
        lines.insert(rng.randrange(len(lines)), raw)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(b"\n".join(lines) + b"\n")


if __name__ == "__main__":
    main()
