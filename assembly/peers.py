"""houqin processes sharing one PostgreSQL know of each other: each registers at start
(``houqin_processes``: host, pid, roles, the fingerprints of its inventory and rule files) and beats while it
runs. A process is refused at start, with the reason, when its clock is off PostgreSQL's by more than the
lease margin (leases and firings are timed by it), or when a live peer runs another inventory or other rule
files — the file that differs is named. Registration holds a PostgreSQL advisory lock, so two processes
starting together are compared with each other too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import delete, func, select, text, update

from houqin.store import Database
from houqin.store.tables import HouqinProcess

log = logging.getLogger(__name__)

BEAT_S = 5.0
LIVE = timedelta(seconds=20)  # a peer not heard of for this long is gone
REGISTRY_LOCK = 0x686F7571  # "houq": the advisory lock registration holds


class PeerConflictError(RuntimeError):
    """This process must not join the ones running on the database (its clock, or its files differ)."""


def fingerprints(inventory_file: Path, rule_files: Sequence[Path]) -> dict[str, str]:
    """SHA-256 of the inventory and of each rule file, by the name a person knows it by."""
    found = {f"inventory {inventory_file.name}": _sha(inventory_file)}
    for path in rule_files:
        found[f"rule file {path.name}"] = _sha(path)
    return found


def _sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


async def register(
    database: Database, files: dict[str, str], roles: Collection[str], max_skew_s: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> str:  # fmt: skip
    """This process's id in the registry; ``PeerConflictError`` if it must not run with the live ones."""
    async with database.session() as session, session.begin():
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REGISTRY_LOCK})
        asked = time.monotonic()
        db_now = await session.scalar(select(func.now()))
        assert isinstance(db_now, datetime)
        round_trip = time.monotonic() - asked
        skew = (clock() - timedelta(seconds=round_trip / 2) - db_now).total_seconds()
        if abs(skew) > max_skew_s:
            raise PeerConflictError(
                f"this machine's clock is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} PostgreSQL's; "
                f"processes must agree within {max_skew_s:g} s (the lease margin): set the clock (NTP) and start again"
            )
        peers = (await session.execute(
            select(HouqinProcess).where(HouqinProcess.seen_at > db_now - LIVE))).scalars().all()  # fmt: skip
        for peer in peers:
            theirs: dict[str, str] = orjson.loads(peer.files)
            other = f"process {peer.pid} on {peer.host} (running since {peer.started_at:%Y-%m-%d %H:%M:%S} UTC)"
            for name in sorted(set(files) | set(theirs)):
                if name not in theirs:
                    why = f"{name} is run here, not by {other}"
                elif name not in files:
                    why = f"{name} is run by {other}, not here"
                elif files[name] != theirs[name]:
                    why = f"{name} differs from the one {other} runs"
                else:
                    continue
                raise PeerConflictError(f"{why}; processes on one database must run the same inventory and rules")
        me = uuid.uuid4().hex
        session.add(HouqinProcess(id=me, host=socket.gethostname(), pid=os.getpid(), roles=",".join(sorted(roles)),
                                  files=orjson.dumps(files).decode(), started_at=db_now, seen_at=db_now))  # fmt: skip
    return me


class PeerBeat:
    """A component: keeps this process's registry row alive, and removes it at a clean stop."""

    def __init__(self, database: Database, process_id: str) -> None:
        self.database = database
        self.process_id = process_id

    @property
    def name(self) -> str:
        return "peers"

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), BEAT_S)
                try:
                    async with self.database.session() as session, session.begin():
                        await session.execute(update(HouqinProcess).where(HouqinProcess.id == self.process_id)
                                              .values(seen_at=func.now()))  # fmt: skip
                except Exception:  # the database away: beat again next time
                    log.warning("peers: cannot record this process as alive", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                async with self.database.session() as session, session.begin():
                    await session.execute(delete(HouqinProcess).where(HouqinProcess.id == self.process_id))
