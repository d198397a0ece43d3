"""Progress of long CLI work on stderr, so stdout stays clean for ``--json``."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from monitor.pipeline import Totals


class Progress:
    """Prints at most every ``interval`` seconds; rewrites one line on a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 2.0):
        self._stream = stream
        self._interval = interval
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._last = self._started

    def __call__(self, totals: Totals) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._write(totals, now, final=False)

    def finish(self, totals: Totals) -> None:
        self._write(totals, time.monotonic(), final=True)

    def _write(self, totals: Totals, now: float, *, final: bool) -> None:
        elapsed = max(now - self._started, 1e-9)
        line = (
            f"alignwatch: {totals.read:,} records read ({totals.read / elapsed:,.0f}/s), "
            f"{totals.invalid:,} invalid, {totals.late:,} late, {elapsed:.1f}s"
        )
        end = "\n" if final or not self._tty else ""
        prefix = "\r" if self._tty else ""
        self._stream.write(prefix + line + end)
        self._stream.flush()
