"""Soak: a long replay with the light scorers, RSS at start, middle and end, records/s.

    .venv/bin/python bench/soak.py [--records 1000000]

The input is written in chunks and replayed by a child process whose RSS this script
samples from /proc once a second; the target is RSS growth from the first sample to the
last of at most 10%. It then checks that the windows counted every record exactly once.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.generate import make_records

CONFIG = """
source: {type: file, file: {path: input.jsonl}}
scorers: [{type: response_tokens}, {type: refusal}]
batch: {max_size: 512, max_wait: 10ms}
store: {path: soak.db, retention: 1h}
metrics: {port: 0}
api: {port: 0}
logging: {level: WARNING}
"""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _counted(db: Path) -> int:
    """Records counted by evaluated windows plus those in windows still open."""
    with sqlite3.connect(db) as connection:
        results = connection.execute("SELECT result FROM windows WHERE status = 'evaluated'")
        evaluated = sum(orjson.loads(row[0])["metrics"]["count"] for row in results)
        (pending,) = connection.execute(
            "SELECT COUNT(*) FROM records WHERE window_start IN"
            " (SELECT start_ms FROM windows WHERE status != 'evaluated')"
        ).fetchone()
    return evaluated + pending


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "input.jsonl"
        with data.open("wb") as handle:
            chunk = 100_000
            for start in range(0, args.records, chunk):
                rows = make_records(
                    min(chunk, args.records - start),
                    start_ms=1_793_610_000_000 + start * 100,
                    span_ms=chunk * 100,
                    seed=start,
                    prefix=f"s{start}",
                )
                handle.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        (folder / "config.yaml").write_text(CONFIG)
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "--config", "config.yaml", "--quiet"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
        )
        samples: list[int] = []  # RSS in KiB, once a second
        size = data.stat().st_size
        while child.poll() is None:
            time.sleep(1.0)
            rss = _rss_kib(child.pid) if Path(f"/proc/{child.pid}").exists() else 0
            if rss:
                samples.append(rss)
        elapsed = time.monotonic() - started
        assert child.returncode == 0, "the soak run failed"
        counted = _counted(folder / "soak.db")
    start_rss, middle_rss, end_rss = samples[0], samples[len(samples) // 2], samples[-1]
    print(f"records: {args.records:,}  input: {size / 1e6:.0f} MB  elapsed: {elapsed:.1f} s")
    print(f"records/s: {args.records / elapsed:,.0f}")
    print(
        f"RSS start {start_rss / 1024:.0f} MiB, middle {middle_rss / 1024:.0f} MiB, "
        f"end {end_rss / 1024:.0f} MiB"
    )
    print(f"growth start->end: {(end_rss - start_rss) / start_rss:+.1%} (target <= +10%)")
    print(f"growth middle->end: {(end_rss - middle_rss) / middle_rss:+.1%}")
    tenths = [samples[len(samples) * i // 10] // 1024 for i in range(10)] + [end_rss // 1024]
    print(f"RSS by tenth of the run (MiB): {tenths}")
    print(f"counted in windows: {counted:,} of {args.records:,}")
    assert counted == args.records, "records were lost or double-counted"


if __name__ == "__main__":
    main()
