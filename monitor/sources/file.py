"""JSON-lines file source: reads to the end, or follows a growing file.

A position is a byte offset, so a restart resumes exactly where the store says it stopped.
Blank lines are not records and are skipped. A line longer than ``max_bytes`` is read in
bounded chunks and handed on truncated to ``max_bytes + 1`` bytes, so it dead-letters as
too large without ever being held whole in memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from monitor.config import Config
from monitor.errors import AlignwatchError
from monitor.records import Position, RawMessage
from monitor.sources.base import StoredPositions

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


class FileSource:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        follow: bool = False,
        poll_interval: float = 0.5,
        stored_positions: StoredPositions | None = None,
    ):
        self.path = path
        self.partition = str(path)
        self._max_bytes = max_bytes
        self._follow = follow
        self._poll_interval = poll_interval
        try:
            self._file = path.open("rb")
        except OSError as exc:
            raise AlignwatchError(f"source.file.path: cannot open {path}: {exc.strerror}") from None
        self._assigned = {self.partition}
        stored = stored_positions({self.partition}) if stored_positions is not None else {}
        self._offset = stored.get(self.partition, 0)
        size = path.stat().st_size
        if self._offset > size:
            log.warning(
                "file is shorter than the stored position; it was replaced, reading from the start",
                extra={"path": str(path), "position": self._offset, "size": size},
            )
            self._offset = 0
        self._file.seek(self._offset)
        self._at_end = False

    def poll(self, max_records: int, timeout: float) -> list[RawMessage]:
        deadline = time.monotonic() + timeout
        messages: list[RawMessage] = []
        while len(messages) < max_records:
            message = self._read_line()
            if message is not None:
                messages.append(message)
                continue
            if self._at_end or messages or time.monotonic() >= deadline:
                break
            time.sleep(min(self._poll_interval, max(0.0, deadline - time.monotonic())))
        return messages

    def _read_line(self) -> RawMessage | None:
        while True:
            start = self._offset
            line = self._file.readline(self._max_bytes + 1)
            if not line:
                self._at_end = not self._follow
                return None
            if not line.endswith(b"\n"):
                if len(line) > self._max_bytes:
                    self._skip_rest_of_line()
                elif self._follow:
                    # A writer is mid-line: wait for the newline before taking it.
                    self._file.seek(start)
                    return None
            self._offset = self._file.tell()
            value = line.rstrip(b"\r\n")
            if value.strip():
                return RawMessage(value, Position(self.partition, start), self._offset)

    def _skip_rest_of_line(self) -> None:
        while chunk := self._file.readline(_CHUNK):
            if chunk.endswith(b"\n"):
                return

    def commit(self, positions: Mapping[str, int]) -> None:
        """Nothing to do: the store keeps the file offset in the same transaction as the data."""

    @property
    def exhausted(self) -> bool:
        return self._at_end

    def take_assigned(self) -> set[str]:
        """The file's one partition, once."""
        assigned, self._assigned = self._assigned, set()
        return assigned

    def take_revoked(self) -> set[str]:
        return set()

    def healthy(self) -> bool:
        return True

    def lag(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        self._file.close()


def from_config(config: Config, stored_positions: StoredPositions) -> FileSource:
    settings = config.source.file
    assert settings is not None  # guaranteed by SourceConfig's validator
    return FileSource(
        settings.path,
        max_bytes=config.records.max_bytes,
        follow=settings.follow,
        poll_interval=settings.poll_interval,
        stored_positions=stored_positions,
    )
