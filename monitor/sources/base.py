"""The source contract: raw messages with positions out, safe positions committed back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from monitor.records import RawMessage

# Partition -> the next offset the store holds for it, for the partitions asked about.
StoredPositions = Callable[[set[str]], Mapping[str, int]]


class Source(Protocol):
    """Yields raw messages; commits only positions the daemon says are durably accounted for.

    Positions are per partition: the offset of the next message to read.
    """

    def poll(self, max_records: int, timeout: float) -> list[RawMessage]: ...

    def commit(self, positions: Mapping[str, int]) -> None: ...

    @property
    def exhausted(self) -> bool:
        """True once a finite source has nothing more to give."""
        ...

    def take_assigned(self) -> set[str]:
        """Partitions given to this worker since the last call (they join the watermark);
        the source has already sought them to their stored positions."""
        ...

    def take_revoked(self) -> set[str]:
        """Partitions taken away since the last call; their uncommitted messages must go."""
        ...

    def healthy(self) -> bool:
        """False while the source cannot reach what it reads from (readiness reports it)."""
        ...

    def lag(self) -> dict[str, int]:
        """Messages not yet read, per partition, where the source can tell."""
        ...

    def close(self) -> None: ...
