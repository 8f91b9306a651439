"""Gateways owned by leases: with several collecting processes on one PostgreSQL, each gateway (a Modbus bus, a
DL/T 645 or CJ/T 188 bus, a DTU that dials in) is polled and commanded by exactly one of them at a time.

Each process renews the leases it holds every ``RENEW_S`` (a lease lasts ``LEASE_S``, database time), so a
process that dies loses its gateways within ``LEASE_S`` and the others take them within one more round. A
process takes expired gateways up to its fair share (gateways ÷ live collecting processes, rounded up) while
another live one is under its share, and every expired gateway when none is; a process over its share gives
back one gateway a round to a process under it (one that joined), so ownership moves back gradually and no
bus is left unpolled for longer than a round. A DTU that dials in to a process makes that
process the gateway's owner at once (``claim``). A gateway taken from a process that stopped renewing gets
its commands left ``sent`` sent again at once: nobody is waiting for them. At a clean stop a process gives
its leases back, so the others take over in one round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from prometheus_client import Gauge
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.store import Database
from houqin.store.keyed import upsert_for
from houqin.store.tables import GatewayLease, HouqinProcess
from houqin.supervisor import Component

log = logging.getLogger(__name__)

LEASE_S = 8.0
RENEW_S = 2.0
# A collecting process not heard of for this long is not counted in the share (each round touches its row).
FRESH = timedelta(seconds=2.5 * RENEW_S)
OWNED = Gauge("houqin_gateways_owned", "Gateways this process polls and commands")

# Called with (gateway, owned, taken_from_a_stopped_holder) whenever this process's ownership changes.
OwnershipChange = Callable[[str, bool, bool], None]


class GatewayOwnership:
    """A component: keeps this process's gateway leases, takes its share, tells the pollers and dispatchers."""

    def __init__(self, database: Database, process_id: str, gateways: Sequence[str]) -> None:
        self.database = database
        self.process_id = process_id
        self.gateways = sorted(gateways)
        self.owned: set[str] = set()
        self._watchers: list[OwnershipChange] = []
        self._events: dict[str, asyncio.Event] = {gateway: asyncio.Event() for gateway in self.gateways}
        self._wake = asyncio.Event()
        self._claims: set[str] = set()
        self._renewed_at = time.monotonic()
        self._rows_made = False

    @property
    def name(self) -> str:
        return "gateway-leases"

    def owns(self, gateway: str) -> bool:
        return gateway in self.owned

    def changed(self, gateway: str) -> asyncio.Event:
        """Set whenever ``gateway``'s ownership changes here (cleared by whoever waits on it)."""
        return self._events[gateway]

    def watch(self, callback: OwnershipChange) -> None:
        self._watchers.append(callback)

    def claim(self, gateway: str) -> None:
        """Take ``gateway`` whoever holds it (its DTU dialled in here), at the next round, which is now."""
        self._claims.add(gateway)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                wait = RENEW_S
                try:
                    wait = min(wait, await self.round())
                    self._renewed_at = time.monotonic()
                except Exception:  # the database away: the leases run out, and another round tries again
                    log.warning("gateway leases: this round failed", exc_info=True)
                    if self.owned and time.monotonic() - self._renewed_at > LEASE_S - RENEW_S:
                        # Our leases are running out unrenewed: another process may hold them soon.
                        log.warning(
                            "gateway leases not renewed for %.0f s: polling none until they are", LEASE_S - RENEW_S
                        )
                        for gateway in sorted(self.owned):
                            self._set(gateway, False, False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, self._wake), wait)
                self._wake.clear()
        finally:
            for gateway in sorted(self.owned):
                self._set(gateway, False, False)
            with contextlib.suppress(Exception):
                async with self.database.session() as session, session.begin():
                    await session.execute(update(GatewayLease).where(GatewayLease.holder == self.process_id)
                                          .values(holder="", expires_at=func.now()))  # fmt: skip

    async def round(self) -> float:
        """Renew, claim, give back over the share, take up to it; the seconds until another process's lease
        runs out, if sooner than the next round (a dead process's gateways are taken the moment they can be)."""
        gained: list[tuple[str, bool]] = []
        async with self.database.session() as session, session.begin():
            await self._ensure_rows(session)
            lease = func.now() + timedelta(seconds=LEASE_S)
            mine = GatewayLease.holder == self.process_id
            renewed = await session.execute(
                update(GatewayLease).where(mine).values(expires_at=lease).returning(GatewayLease.gateway)
            )  # fmt: skip
            held = set(renewed.scalars())
            for gateway in sorted(self._claims):
                before = await session.scalar(select(GatewayLease.holder).where(GatewayLease.gateway == gateway)
                                              .with_for_update())  # fmt: skip
                await self._take(session, gateway)
                if gateway not in held:
                    gained.append((gateway, bool(before) and before != self.process_id))
                held.add(gateway)
            self._claims.clear()
            # The share counts the collecting processes heard of within FRESH: each touches its row every
            # round, so one that died stops counting before its leases run out, and the survivors take them.
            await session.execute(update(HouqinProcess).where(HouqinProcess.id == self.process_id)
                                  .values(seen_at=func.now()))  # fmt: skip
            fresh = {self.process_id, *await self._collectors(session)}
            share = math.ceil(len(self.gateways) / len(fresh))
            leases = await self._lease_counts(session)
            wanting = any(leases.get(peer, 0) < share for peer in fresh - {self.process_id})
            if len(held) > share and wanting:
                # One a round, to a process under its share (one that just joined): it takes it at its next
                # round, then the next one goes, so no bus waits long and none is polled twice.
                given = max(held - {gateway for gateway, _ in gained})
                await session.execute(update(GatewayLease).where(GatewayLease.gateway == given, mine)
                                      .values(holder="", expires_at=func.now()))  # fmt: skip
                held.discard(given)
            elif len(held) < share or not wanting:
                # Up to the share while others want theirs; everything nobody holds when nobody else does.
                limit = share - len(held) if wanting else len(self.gateways)
                free = await session.execute(
                    select(GatewayLease.gateway, GatewayLease.holder)
                    .where(GatewayLease.expires_at < func.now())  # every process runs the same inventory
                    .order_by(func.md5(GatewayLease.gateway + self.process_id))  # processes start apart
                    .limit(limit).with_for_update(skip_locked=True)
                )  # fmt: skip
                for gateway, before in free.all():
                    await self._take(session, gateway)
                    held.add(gateway)
                    gained.append((gateway, bool(before)))
            next_expiry = await session.scalar(
                select(func.extract("epoch", func.min(GatewayLease.expires_at) - func.now()))
                .where(GatewayLease.holder != "", GatewayLease.holder != self.process_id,
                       GatewayLease.expires_at > func.now())
            )  # fmt: skip
        self._rows_made = True  # committed
        for gateway in sorted(self.owned - held):
            log.warning("gateway %s: lease lost or given back; another process polls it now", gateway)
            self._set(gateway, False, False)
        taken = dict(gained)
        for gateway in sorted(held - self.owned):  # taken now, or renewed after a round that failed
            log.info("gateway %s: polled and commanded by this process now", gateway)
            self._set(gateway, True, taken.get(gateway, False))
        return RENEW_S if next_expiry is None else max(0.05, float(next_expiry) + 0.05)

    async def _take(self, session: AsyncSession, gateway: str) -> None:
        await session.execute(update(GatewayLease).where(GatewayLease.gateway == gateway).values(
            holder=self.process_id, expires_at=func.now() + timedelta(seconds=LEASE_S), since=func.now()))  # fmt: skip

    async def _ensure_rows(self, session: AsyncSession) -> None:
        # Every gateway has a row (free at first), so taking one is always an UPDATE of a locked row. Once
        # per process: the rows stay.
        if self._rows_made:
            return
        rows = [{"gateway": gateway, "holder": "", "expires_at": func.now(), "since": func.now()}
                for gateway in self.gateways]  # fmt: skip
        if rows:
            await session.execute(upsert_for(session)(GatewayLease).values(rows).on_conflict_do_nothing())

    async def _collectors(self, session: AsyncSession) -> set[str]:
        rows = await session.execute(
            select(HouqinProcess.id)
            .where(HouqinProcess.seen_at > func.now() - FRESH, HouqinProcess.roles.like("%collect%"))
        )  # fmt: skip
        return set(rows.scalars())

    async def _lease_counts(self, session: AsyncSession) -> dict[str, int]:
        rows = await session.execute(
            select(GatewayLease.holder, func.count()).where(GatewayLease.holder != "",
                   GatewayLease.expires_at > func.now()).group_by(GatewayLease.holder)
        )  # fmt: skip
        return {holder: int(count) for holder, count in rows.all()}

    def _set(self, gateway: str, owned: bool, from_stopped: bool) -> None:
        if owned:
            self.owned.add(gateway)
        else:
            self.owned.discard(gateway)
        OWNED.set(len(self.owned))
        self._events[gateway].set()
        for watcher in self._watchers:
            watcher(gateway, owned, from_stopped)


async def _first(*events: asyncio.Event, task: asyncio.Task[None] | None = None) -> None:
    """Wait until one of ``events`` is set (or ``task`` ends)."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait([*waits, *([task] if task is not None else [])], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


class Owned:
    """A component that runs ``inner`` (a gateway's poller) only while this process owns the gateway."""

    def __init__(self, inner: Component, gateway: str, ownership: GatewayOwnership) -> None:
        self.inner = inner
        self.gateway = gateway
        self.ownership = ownership

    @property
    def name(self) -> str:
        return self.inner.name

    async def run(self, stop: asyncio.Event) -> None:
        changed = self.ownership.changed(self.gateway)
        while not stop.is_set():
            if not self.ownership.owns(self.gateway):
                changed.clear()
                await _first(stop, changed)
                continue
            inner_stop = asyncio.Event()
            running = asyncio.create_task(self.inner.run(inner_stop), name=f"owned:{self.inner.name}")
            while not stop.is_set() and self.ownership.owns(self.gateway) and not running.done():
                changed.clear()
                await _first(stop, changed, task=running)
            inner_stop.set()
            await running  # a poller that failed fails the process, as it would unowned
