"""Run the real daemon as a child process and read its SQLite store from outside."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT


def start_daemon(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config), "--quiet", *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> tuple[int, str]:
    """SIGTERM, then the exit code and stderr; SIGKILL if it does not stop in time."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(
            f"daemon ignored SIGTERM for {timeout}s:\n{err.decode()[-3000:]}"
        ) from exc
    return process.returncode, err.decode()


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()


def _query(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # schema not created yet
    finally:
        connection.close()


def stored_records(db: Path) -> int:
    rows = _query(db, "SELECT COUNT(*) FROM records")
    return rows[0][0] if rows else 0


def window_counts(db: Path) -> dict[int, int]:
    return dict(_query(db, "SELECT window_start, COUNT(*) FROM records GROUP BY window_start"))


def dead_letter_reasons(db: Path) -> dict[str, int]:
    return dict(_query(db, "SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason"))
