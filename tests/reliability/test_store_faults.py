"""A locked SQLite store or a full disk stops consumption (nothing committed past it) and
it resumes when the fault clears."""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.daemon_process import DaemonProcess, stored_records
from tests.generate import make_records

START = 1_793_610_000_000


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def test_locked_store_pauses_the_daemon_and_readiness_until_it_clears(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", "t")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path / "input.jsonl"
    first = [orjson.dumps(r) for r in make_records(100, start_ms=START, span_ms=60_000)]
    data.write_bytes(b"\n".join(first) + b"\n")
    config = write_config(
        {"source": {"file": {"follow": True, "poll_interval": "50ms"}}, "api": {"port": port}}
    )
    db = tmp_path / "store.db"
    ready = f"http://127.0.0.1:{port}/readyz"
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(lambda: stored_records(db) == 100 and _status(ready) == 200, 30, "start")
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        more = make_records(50, start_ms=START + 60_000, span_ms=60_000, prefix="more")
        with data.open("ab") as handle:
            handle.write(b"\n".join(orjson.dumps(r) for r in more) + b"\n")
        daemon.wait_for(lambda: _status(ready) == 503, 30, "readiness to report the fault")
        blocker.execute("ROLLBACK")
        blocker.close()
        daemon.wait_for(lambda: stored_records(db) == 150, 60, "the write to go through")
        daemon.wait_for(lambda: _status(ready) == 200, 30, "readiness to recover")
    finally:
        assert daemon.stop() == 0, daemon.log_tail()
    assert "store write failed; retrying" in daemon.log_tail(1_000_000)
    positions = sqlite3.connect(db).execute("SELECT value FROM meta WHERE key='positions'")
    assert orjson.loads(positions.fetchone()[0]) == {str(data): data.stat().st_size}


def _fill(path: Path) -> None:
    """Write zeros until the file system says it is full."""
    chunk = b"\0" * 65_536
    with path.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    with path.open("ab", buffering=0) as handle:  # and the last partial chunk
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_pauses_the_daemon_until_space_frees(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", "t")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], check=True)
    try:
        data = tmp_path / "input.jsonl"
        first = [orjson.dumps(r) for r in make_records(100, start_ms=START, span_ms=60_000)]
        data.write_bytes(b"\n".join(first) + b"\n")
        db = disk / "store.db"
        config = write_config(
            {
                "source": {"file": {"follow": True, "poll_interval": "50ms"}},
                "store": {"path": str(db)},
                "api": {"port": port},
            }
        )
        ready = f"http://127.0.0.1:{port}/readyz"
        daemon = DaemonProcess(config)
        try:
            daemon.wait_for(
                lambda: stored_records(db) == 100 and _status(ready) == 200, 30, "start"
            )
            filler = disk / "filler"
            _fill(filler)
            more = make_records(500, start_ms=START + 60_000, span_ms=60_000, prefix="more")
            with data.open("ab") as handle:
                handle.write(b"\n".join(orjson.dumps(r) for r in more) + b"\n")
            daemon.wait_for(lambda: _status(ready) == 503, 30, "readiness to report the fault")
            assert stored_records(db) == 100
            positions = sqlite3.connect(db).execute("SELECT value FROM meta WHERE key='positions'")
            assert orjson.loads(positions.fetchone()[0])[str(data)] < data.stat().st_size
            filler.unlink()
            daemon.wait_for(lambda: stored_records(db) == 600, 60, "the write to go through")
            daemon.wait_for(lambda: _status(ready) == 200, 30, "readiness to recover")
        finally:
            assert daemon.stop() == 0, daemon.log_tail()
        assert "database or disk is full" in daemon.log_tail(1_000_000)
        positions = sqlite3.connect(db).execute("SELECT value FROM meta WHERE key='positions'")
        assert orjson.loads(positions.fetchone()[0]) == {str(data): data.stat().st_size}
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
