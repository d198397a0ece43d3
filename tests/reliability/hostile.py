"""A corpus of malformed and hostile messages, each with the outcome it must end in."""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson

BASE = {"model": "m", "prompt": "p", "response": "r"}
TS = 1_793_610_000_000


def hostile_corpus(count: int, seed: int = 0) -> Iterator[bytes]:
    """``count`` messages: random bytes, deep nesting, huge strings, wrong types, invalid
    UTF-8, duplicate ids, timestamps far in the past or future, and a few valid ones."""
    rng = random.Random(seed)
    makers = [
        lambda i: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(
            b"\n", b" "
        ),
        lambda i: b"[" * rng.randrange(100, 5_000) + b"]" * rng.randrange(0, 5_000),
        lambda i: orjson.dumps({**BASE, "id": f"h{i}", "ts": TS, "response": "x" * 2_000_000}),
        lambda i: orjson.dumps({**BASE, "id": rng.choice([1, None, [], {}, True]), "ts": TS}),
        lambda i: orjson.dumps({**BASE, "id": f"h{i}", "ts": TS})[:-3] + b'\xff\xfe"}',
        lambda i: orjson.dumps({**BASE, "id": "dup", "ts": TS + 1_000}),
        lambda i: orjson.dumps({**BASE, "id": f"h{i}", "ts": rng.choice([1, -5, 10**15, 2**62])}),
        lambda i: orjson.dumps({**BASE, "id": f"h{i}", "ts": "2999-01-01T00:00:00Z"}),
        lambda i: orjson.dumps({**BASE, "id": f"h{i}", "ts": TS, "metadata": {"a": [1] * 10}}),
        lambda i: orjson.dumps({**BASE, "id": f"h{i}", "ts": TS, "prompt": 12}),
        lambda i: orjson.dumps(rng.choice([[], "s", 3, None, 1.5])),
        lambda i: b'{"id": "h' + str(i).encode() + b'", "ts": 1e999}',
        lambda i: orjson.dumps({**BASE, "id": f"v{i}", "ts": TS + rng.randrange(600_000)}),
    ]
    for index in range(count):
        yield makers[index % len(makers)](index)
