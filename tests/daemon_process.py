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


class DaemonProcess:
    """A daemon child process whose stderr (JSON logs) goes to a file for post-mortems."""

    def __init__(self, config: Path, *extra: str):
        self.log_path = config.with_name(f"{config.stem}-{time.monotonic_ns()}.log")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "run",
                "--config",
                str(config),
                "--quiet",
                *extra,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_bytes()[-chars:].decode(errors="replace")

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"gave up waiting for {what} (exit code {self.process.returncode}); "
            f"daemon log:\n{self.log_tail()}"
        )

    def wait(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise AssertionError(
                f"daemon still running after {timeout}s:\n{self.log_tail()}"
            ) from exc
        finally:
            self._log.close()
        return code

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and the exit code; SIGKILL and fail if it does not stop in time."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()


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
