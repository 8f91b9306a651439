"""A durable, size-capped spool of line-protocol batches, for while InfluxDB cannot take them.

One file per batch, named by sequence number and point count, written to a temporary name, fsynced and
renamed, so a crash leaves either the whole batch or none of it. Batches come out oldest first. A batch
whose write succeeded is deleted afterwards; a crash in between replays it once more, which InfluxDB
absorbs (a point with the same series and timestamp overwrites itself), so nothing is stored twice.
When a new batch would take the spool over its cap, the oldest batches are dropped to make room, and
every dropped point is counted and logged: never silently.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

SPOOL_BYTES = Gauge("houqin_telemetry_spool_bytes", "Bytes of readings waiting in the spool")
SPOOL_POINTS = Gauge("houqin_telemetry_spool_points", "Points waiting in the spool")
SPOOL_DROPPED = Counter("houqin_telemetry_spool_dropped_points_total", "Points dropped because the spool was full")

_SUFFIX = ".lp"


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    sequence: int
    points: int
    size: int

    def read(self) -> bytes:
        return self.path.read_bytes()


class Spool:
    """Batches on disk under ``directory``, at most ``max_bytes`` of them."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob("*.tmp"):  # a batch whose write a crash interrupted
            leftover.unlink()
        self._batches: deque[SpooledBatch] = deque(sorted(self._scan(), key=lambda batch: batch.sequence))
        self.bytes = sum(batch.size for batch in self._batches)
        self.points = sum(batch.points for batch in self._batches)
        self._next = self._batches[-1].sequence + 1 if self._batches else 0
        self.dropped_points = 0
        self._publish()
        if self._batches:
            log.info("spool holds %d points (%d bytes) from before the restart; they will be written",
                     self.points, self.bytes)  # fmt: skip

    def _scan(self) -> list[SpooledBatch]:
        batches = []
        for path in self.directory.glob(f"*{_SUFFIX}"):
            try:
                sequence, points = (int(part) for part in path.stem.split("-"))
            except ValueError:
                log.warning("spool: ignoring %s (not a houqin batch)", path.name)
                continue
            batches.append(SpooledBatch(path, sequence, points, path.stat().st_size))
        return batches

    def __len__(self) -> int:
        return len(self._batches)

    def append(self, body: bytes, points: int) -> SpooledBatch | None:
        """Keep a batch on disk (durably, before returning); None if it is larger than the whole spool."""
        size = len(body)
        while self._batches and self.bytes + size > self.max_bytes:
            oldest = self._batches.popleft()
            self._forget(oldest)
            self.dropped_points += oldest.points
            SPOOL_DROPPED.inc(oldest.points)
            log.error("spool full (%d bytes): dropped the oldest %d points; %d dropped so far",
                      self.max_bytes, oldest.points, self.dropped_points)  # fmt: skip
        if size > self.max_bytes:
            self.dropped_points += points
            SPOOL_DROPPED.inc(points)
            log.error("spool: a batch of %d bytes is larger than the whole spool; dropped %d points", size, points)
            return None
        path = self.directory / f"{self._next:016d}-{points}{_SUFFIX}"
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.rename(path)
        _sync_directory(self.directory)
        batch = SpooledBatch(path, self._next, points, size)
        self._batches.append(batch)
        self._next += 1
        self.bytes += size
        self.points += points
        self._publish()
        return batch

    def oldest(self) -> SpooledBatch | None:
        return self._batches[0] if self._batches else None

    def remove(self, batch: SpooledBatch) -> None:
        """The batch is written: it leaves the spool (the oldest, when replayed; any, when it was a copy of
        a batch written live after all). A batch the spool dropped when full is gone already."""
        if self._batches and self._batches[0] == batch:
            self._batches.popleft()
        elif batch in self._batches:
            self._batches.remove(batch)
        else:
            return
        self._forget(batch)
        self._publish()

    def _forget(self, batch: SpooledBatch) -> None:
        batch.path.unlink(missing_ok=True)
        self.bytes -= batch.size
        self.points -= batch.points

    def _publish(self) -> None:
        SPOOL_BYTES.set(self.bytes)
        SPOOL_POINTS.set(self.points)


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable: the file's data is on disk after its own fsync, but its new
    name is an entry of the directory, which a power cut can lose until the directory is synced too."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
