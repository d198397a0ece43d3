"""Throughput of `alignwatch replay` with the light scorers, against parse-only as a floor.

    .venv/bin/python bench/replay.py [--records 100000]

Prints records/s of the whole replay path (parse, score, window, SQLite, evaluation) and of
parsing alone on the same input, measured side by side in one run, and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.cli import main as cli_main
from monitor.records import Position, RawMessage, parse
from tests.generate import make_records

CONFIG = """
source: {type: file, file: {path: input.jsonl}}
scorers: [{type: response_tokens}, {type: refusal}]
batch: {max_size: 256, max_wait: 10ms}
metrics: {port: 0}
logging: {level: WARNING}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = [
            orjson.dumps(r)
            for r in make_records(
                args.records, start_ms=1_793_610_000_000, span_ms=args.records * 100
            )
        ]
        data = folder / "input.jsonl"
        data.write_bytes(b"\n".join(lines) + b"\n")
        (folder / "config.yaml").write_text(CONFIG)

        started = time.perf_counter()
        for offset, line in enumerate(lines):
            parse(RawMessage(line, Position("f", offset), offset + 1), max_bytes=1 << 20)
        parse_rate = len(lines) / (time.perf_counter() - started)

        started = time.perf_counter()
        code = cli_main(
            ["replay", "--config", str(folder / "config.yaml"), str(data), "--quiet", "--json"]
        )
        replay_rate = len(lines) / (time.perf_counter() - started)
    assert code == 0
    print(f"records: {args.records:,}", file=sys.stderr)
    print(f"parse only:   {parse_rate:12,.0f} records/s", file=sys.stderr)
    print(f"full replay:  {replay_rate:12,.0f} records/s", file=sys.stderr)
    print(f"replay/parse: {replay_rate / parse_rate:12.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
