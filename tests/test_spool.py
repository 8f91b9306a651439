"""The spool keeps batches across a restart, in order, within its cap, and counts what it must drop."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from houqin.telemetry.spool import Spool


def batch(index: int, points: int = 10) -> bytes:
    return "".join(f"m,device=d{index} v={i} {index * 1000 + i}\n" for i in range(points)).encode()


def test_batches_survive_a_restart_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for index in range(3):
        spool.append(batch(index), 10)
    (tmp_path / "0000000000000009-10.tmp").write_bytes(b"half a batch")  # a write a crash cut short
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert len(reopened) == 3 and reopened.points == 30 and not list(tmp_path.glob("*.tmp"))
    oldest = reopened.oldest()
    assert oldest is not None and oldest.read() == batch(0)
    reopened.remove(oldest)
    reopened.append(batch(3), 10)
    again = Spool(tmp_path, max_bytes=1 << 20)
    order = []
    while (item := again.oldest()) is not None:
        order.append(item.read())
        again.remove(item)
    assert order == [batch(1), batch(2), batch(3)] and again.bytes == 0


def test_a_full_spool_drops_the_oldest_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    size = len(batch(1))
    spool = Spool(tmp_path, max_bytes=3 * size)
    for index in range(1, 6):  # batches of the same size
        spool.append(batch(index), 10)
    assert len(spool) == 3 and spool.dropped_points == 20 and spool.bytes == 3 * size
    oldest = spool.oldest()
    assert oldest is not None and oldest.read() == batch(3)
    assert sum("spool full" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR) == 2


def test_a_batch_reported_written_survives_a_power_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's data is synced, and so is its directory once it holds the batch's final name: a rename
    is not durable until then, and a power cut could lose a batch the spool had reported written."""
    import os
    import stat

    synced: list[tuple[str, list[str]]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        synced.append(("directory" if stat.S_ISDIR(mode) else "file", sorted(p.name for p in tmp_path.iterdir())))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(batch(1), 10)
    final = spool.oldest()
    assert final is not None
    assert [kind for kind, _ in synced] == ["file", "directory"]
    assert synced[1][1] == [final.path.name]  # the directory was synced holding the final name, not the .tmp
