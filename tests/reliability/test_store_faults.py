"""A locked SQLite store or a full disk stops consumption (nothing stored or committed past
the failed write, readiness 503) and the daemon resumes when the fault clears."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from tests.daemon_process import DaemonProcess, stored_records
from tests.generate import make_records
from tests.net import free_port, http_status

START = 1_793_610_000_000
FIRST, MORE = 100, 500

# Injects the fault into the store at the path given and returns what clears it.
Fault = Callable[[Path], Callable[[], None]]


def _stored_position(db: Path) -> dict[str, int]:
    row = sqlite3.connect(db).execute("SELECT value FROM meta WHERE key='positions'").fetchone()
    return orjson.loads(row[0])


def _survive(
    fault: Fault, db: Path, tmp_path: Path, write_config: Callable[..., Path], error: str
) -> None:
    port = free_port()
    data = tmp_path / "input.jsonl"
    first = make_records(FIRST, start_ms=START, span_ms=60_000)
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in first) + b"\n")
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
            lambda: stored_records(db) == FIRST and http_status(ready) == 200, 30, "start"
        )
        clear = fault(db)
        more = make_records(MORE, start_ms=START + 60_000, span_ms=60_000, prefix="more")
        with data.open("ab") as handle:
            handle.write(b"\n".join(orjson.dumps(r) for r in more) + b"\n")
        daemon.wait_for(lambda: http_status(ready) == 503, 30, "readiness to report the fault")
        assert stored_records(db) == FIRST
        assert _stored_position(db)[str(data)] < data.stat().st_size
        clear()
        daemon.wait_for(lambda: stored_records(db) == FIRST + MORE, 60, "the write to go through")
        daemon.wait_for(lambda: http_status(ready) == 200, 30, "readiness to recover")
    finally:
        assert daemon.stop() == 0, daemon.log_tail()
    log = daemon.log_tail(1_000_000)
    assert "store write failed; retrying" in log and error in log
    assert _stored_position(db) == {str(data): data.stat().st_size}


def _lock(db: Path) -> Callable[[], None]:
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")

    def clear() -> None:
        blocker.execute("ROLLBACK")
        blocker.close()

    return clear


def _fill_disk(db: Path) -> Callable[[], None]:
    """Write zeros beside the store until the file system says it is full."""
    filler = db.with_name("filler")
    with filler.open("wb", buffering=0) as handle:
        for size in (65_536, 512):  # big chunks, then the last partial one
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler.unlink


@contextmanager
def _small_disk(folder: Path) -> Iterator[Path]:
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_locked_store_pauses_the_daemon_and_readiness_until_it_clears(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", "t")
    _survive(_lock, tmp_path / "store.db", tmp_path, write_config, "database is locked")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_pauses_the_daemon_until_space_frees(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", "t")
    with _small_disk(tmp_path / "disk") as disk:
        _survive(_fill_disk, disk / "store.db", tmp_path, write_config, "database or disk is full")
