"""10,000 hostile messages end in the dead-letter sink or a counter, never in a crash."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from monitor.records import DeadLetterReason
from tests.conftest import ROOT
from tests.reliability.hostile import hostile_corpus


def test_hostile_corpus_is_accounted_for_and_memory_stays_bounded(
    tmp_path: Path, write_config: Callable[..., Path]
):
    data = tmp_path / "hostile.jsonl"
    lines = list(hostile_corpus(10_000))
    data.write_bytes(b"\n".join(lines) + b"\n")
    dead = tmp_path / "dead.jsonl"
    config = write_config({"records": {"max_bytes": 1_000_000}})
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(config), str(data), str(dead)],
        cwd=ROOT,
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    document, peak_kib = (
        orjson.loads(result.stdout.splitlines()[-2]),
        int(result.stdout.splitlines()[-1]),
    )
    records = document["records"]
    non_blank = sum(1 for line in data.read_bytes().split(b"\n") if line.strip())
    assert records["read"] == non_blank
    assert records["valid"] + records["invalid"] == records["read"]
    counted = sum(w["count"] for w in document["windows"])
    assert counted + records["late"] + records["duplicates"] == records["valid"]
    envelopes = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert len(envelopes) == records["invalid"] + records["late"]
    reasons = Counter(e["reason"] for e in envelopes)
    assert set(reasons) <= {r.value for r in DeadLetterReason}
    assert {"invalid_json", "too_large", "wrong_type", "timestamp_out_of_range"} <= set(reasons)
    assert records["duplicates"] >= 700  # the repeated id "dup" counts once
    # 2 MB strings and 5,000-deep nesting, 10,000 times: the process stays small.
    assert peak_kib < 400_000, f"peak RSS {peak_kib} KiB"
    print(
        f"hostile corpus: {dict(reasons)}, late {records['late']}, "
        f"duplicates {records['duplicates']}, peak RSS {peak_kib / 1024:.0f} MiB"
    )


# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent through
# fork and exec, so a child would report the test process's own peak.
_MEASURED = """
import sys
from monitor.cli import main
code = main(["replay", "--config", sys.argv[1], sys.argv[2], "--json", "--quiet",
             "--dead-letters", sys.argv[3]])
status = open("/proc/self/status").read()
print(status.split("VmHWM:")[1].split()[0])
sys.exit(code)
"""
