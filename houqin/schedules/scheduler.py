"""The scheduler: fires schedule entries, overrides and emergency broadcasts on time, through the command
queue, and records what it did.

It plans every zone's timeline for the next day and a half, sleeps until the next moment something is
due, and then:

- **lighting**: the state the zone should hold now (``ZoneTimeline.state_at``) is compared with the
  state last commanded; a difference queues commands. On start nothing has been commanded, so every
  lighting zone is **reconciled** to the state that should hold now (after an outage too);
- **broadcast**: each programme that became due since the last pass is played, unless it is suppressed
  (recorded as such) or later than the grace — then it is recorded as **missed**, not played late,
  unless its entry says ``play_if_missed`` and some of it remains.

What is due next is worked out shortly before it is due (a pass prepared from the same plan), so that at
the due second the scheduler only writes and sends: at a campus-wide bell, working out hundreds of zones'
actions took as long as writing them.

Only one scheduler is active per database: a lease row, renewed every few seconds, taken over when it
expires (a conditional UPDATE, atomic on SQLite and PostgreSQL). The lease row also keeps how far the
holder has fired, which is how a restart knows what it missed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from houqin.inventory import Inventory
from houqin.schedules.book import ScheduleBook
from houqin.schedules.commander import Firing, ZoneCommander
from houqin.schedules.timeline import LightState, Sound, ZoneTimeline
from houqin.settings import ScheduleSettings
from houqin.store.tables import FiringOutcome, SchedulerLease

log = logging.getLogger(__name__)

FIRINGS = Counter("houqin_schedule_firings_total", "Zone actions the scheduler recorded", ["outcome"])
PLANS = Counter("houqin_schedule_plans_total", "Times the scheduler worked out every zone's timeline")
ACTIVE = Gauge("houqin_scheduler_active", "1 while this process holds the scheduler lease")

LEASE = "scheduler"
LEASE_SECONDS = 8.0  # a dead holder is replaced within LEASE_SECONDS + RENEW_SECONDS (10 s)
RENEW_SECONDS = 2.0
HORIZON = timedelta(hours=36)
REPLAN_SECONDS = 30.0  # picks up changes made through another process's API
LONGEST_CATCH_UP = timedelta(days=2)  # missed programmes older than this are not listed one by one
SOON = timedelta(seconds=2)  # what is due this soon is prepared, and no periodic replan runs before it
# After a change, the plan is made again once changes pause this long (at most REPLAN_SETTLE_MAX): a term's
# timetable arrives schedule by schedule, and 500 saves made 500 plans. A pass due meanwhile plans first.
REPLAN_SETTLE = 0.2
REPLAN_SETTLE_MAX = 1.0
PREPARED_LATENESS = timedelta(seconds=1)  # a prepared pass reached later than this is worked out again


@dataclass(frozen=True)
class _Pass:
    """What fires at ``at``: the firings, and the lighting states they command. Prepared ahead, it holds
    while the plan, what was commanded and how far the scheduler fired have not changed (``version``)."""

    at: datetime
    since: datetime
    version: int
    firings: list[Firing]
    commanded: dict[str, LightState]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    name = "scheduler"

    def __init__(
        self,
        book: ScheduleBook,
        commander: ZoneCommander,
        inventory: Inventory,
        settings: ScheduleSettings,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.book = book
        self.commander = commander
        self.inventory = inventory
        self.grace = timedelta(seconds=settings.late_grace_s)
        self.command_deadline = timedelta(seconds=settings.command_deadline_s)
        self.clock = clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.active = False
        self._plan: dict[str, ZoneTimeline] = {}
        self._planned_at: datetime | None = None
        self._plan_end: datetime | None = None
        self._stale = asyncio.Event()
        self._changes = 0
        self._commanded: dict[str, LightState] = {}
        self._fired_through: datetime | None = None
        self._lease_until: datetime | None = None
        self._version = 0  # moves whenever a prepared pass may no longer hold
        self._prepared: _Pass | None = None
        book.on_change(self.invalidate)

    def invalidate(self) -> None:
        """Plan again before the next pass (a schedule, the calendar, an override changed)."""
        self._changes += 1
        self._stale.set()

    # --- the lease --------------------------------------------------------------------------------------

    async def _hold_lease(self, now: datetime) -> bool:
        if (
            self.active
            and self._lease_until is not None
            and now < self._lease_until - timedelta(seconds=LEASE_SECONDS - RENEW_SECONDS)
        ):
            return True
        expires = now + timedelta(seconds=LEASE_SECONDS)
        async with self.book.database.session() as session:
            result = await session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == LEASE)
                .where((SchedulerLease.holder == self.holder) | (SchedulerLease.expires_at < now))
                .values(holder=self.holder, expires_at=expires)
            )
            held = bool(result.rowcount)  # type: ignore[attr-defined]
            if not held:
                exists = (
                    await session.execute(select(SchedulerLease.name).where(SchedulerLease.name == LEASE))
                ).scalar()
                if exists is None:
                    try:
                        await session.execute(
                            insert(SchedulerLease).values(name=LEASE, holder=self.holder, expires_at=expires)
                        )
                        held = True
                    except IntegrityError:
                        held = False
            fired_through = None
            if held and not self.active:
                row = await session.get(SchedulerLease, LEASE)
                fired_through = row.fired_through if row is not None else None
            await session.commit()
        if held and not self.active:
            log.info("scheduler active in this process (%s)", self.holder)
            self._commanded.clear()  # reconcile every lighting zone
            self._fired_through = fired_through
            self._version += 1
        elif not held and self.active:
            log.warning("scheduler lease lost to another process; standing by")
        self.active = held
        self._lease_until = expires if held else None
        ACTIVE.set(1 if held else 0)
        return held

    async def _save_progress(self, now: datetime) -> None:
        async with self.book.database.session() as session:
            await session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == LEASE, SchedulerLease.holder == self.holder)
                .values(fired_through=now)
            )
            await session.commit()

    async def release(self) -> None:
        if not self.active:
            return
        async with self.book.database.session() as session:
            await session.execute(
                update(SchedulerLease)
                .where(SchedulerLease.name == LEASE, SchedulerLease.holder == self.holder)
                .values(expires_at=self.clock() - timedelta(seconds=1))
            )
            await session.commit()
        self.active = False
        ACTIVE.set(0)

    # --- planning ---------------------------------------------------------------------------------------

    async def _replan(self, now: datetime, since: datetime) -> None:
        self._stale.clear()
        PLANS.inc()
        drivers = await self.book.drivers(since)
        end = now + HORIZON
        self._plan = {zone.id: self.book.timeline(drivers, zone, since, end) for zone in self.inventory.zones.values()}
        self._planned_at, self._plan_end = now, end
        self._version += 1

    def _needs_plan(self, now: datetime, since: datetime) -> bool:
        # The periodic refresh (for changes made through another process) waits until after a pass, so that
        # it never delays what is due now; a change made here, or a plan running out, is planned first.
        return (
            self._stale.is_set()
            or self._planned_at is None
            or self._plan_end is None
            or now > self._plan_end - HORIZON / 2
            or since < self._planned_at - LONGEST_CATCH_UP
        )

    # --- one pass ---------------------------------------------------------------------------------------

    async def tick(self) -> datetime | None:
        """Do everything due at the clock's now; the next moment something is due (None: standing by)."""
        now = self.clock()
        if not await self._hold_lease(now):
            return None
        since = max(self._fired_through or now, now - LONGEST_CATCH_UP)
        if self._needs_plan(now, since):
            await self._replan(now, since - timedelta(seconds=1))
        prepared = self._prepared
        if (
            prepared is not None
            and prepared.version == self._version
            and prepared.since == since
            and prepared.at <= now < prepared.at + PREPARED_LATENESS
        ):
            # Fired as of its moment: what falls due between then and now is the next pass's, at once.
            done = prepared
        else:
            done = self._pass(now, since)
        if done.firings:
            written = await self.commander.record(done.firings, now)
            for firing in written:
                FIRINGS.labels(firing.outcome).inc()
                log.info(
                    "zone %s: %s %s (%s) %s", firing.zone, firing.action, firing.outcome, firing.cause, firing.detail
                )
        if done.commanded:
            self._commanded.update(done.commanded)
            self._version += 1
        if self._fired_through is None or done.at > self._fired_through:
            self._fired_through = done.at
            self._version += 1
            await self._save_progress(done.at)
        due = self._next_due(done.at)
        if (
            (due is None or due - now > SOON)
            and self._planned_at is not None
            and (now - self._planned_at > timedelta(seconds=REPLAN_SECONDS))
        ):
            await self._replan(now, now - timedelta(seconds=1))
            due = self._next_due(done.at)
        ready = self._prepared
        if (
            due is not None
            and due - now <= SOON
            and (ready is None or (ready.at, ready.version) != (due, self._version))
        ):
            self._prepared = self._pass(due, self._fired_through or done.at)
        return due

    def _pass(self, at: datetime, since: datetime) -> _Pass:
        """Everything due at ``at`` that the last pass (which fired through ``since``) did not fire."""
        firings: list[Firing] = []
        commanded: dict[str, LightState] = {}
        for zone_id, timeline in self._plan.items():
            if timeline.zone.holds_state:
                change = self._lighting(zone_id, timeline, at, since)
                if change is not None:
                    firings.append(change[0])
                    commanded[zone_id] = change[1]
            else:
                firings += self._broadcast(zone_id, timeline, at, since)
        return _Pass(at, since, self._version, firings, commanded)

    def _lighting(
        self, zone_id: str, timeline: ZoneTimeline, now: datetime, since: datetime
    ) -> tuple[Firing, LightState] | None:
        """The firing that brings the zone to the state it should hold now, and that state; None when
        it was last commanded to it."""
        state, layer, cause = timeline.state_at(now)
        if self._commanded.get(zone_id) == state:
            return None
        changed_at = timeline.changed_at(now)
        # A change that happened while houqin was down, or before it first ran, is a reconciliation (taking
        # the lease empties what was commanded, so every zone's first firing is one).
        reconcile = changed_at is None or changed_at < since or zone_id not in self._commanded
        due = now if reconcile else changed_at
        assert due is not None
        firing = Firing(
            zone_id,
            ("reconcile:" if reconcile else "") + cause,
            state.action,
            due,
            detail=f"{state} ({layer})",
            level=state.level,
            deadline=due + self.command_deadline,
        )
        return firing, state

    def _broadcast(self, zone_id: str, timeline: ZoneTimeline, now: datetime, since: datetime) -> list[Firing]:
        firings: list[Firing] = []
        for sound in timeline.sounds():
            # On the very first pass ``since`` is now: nothing before houqin first ran counts as missed.
            if not since < sound.start <= now:
                continue
            firings.append(self._sound_firing(zone_id, sound, now))
        return firings

    def _sound_firing(self, zone_id: str, sound: Sound, now: datetime) -> Firing:
        base = Firing(zone_id, sound.cause, sound.action, sound.start, programme=sound.programme)
        if sound.suppressed_by is not None:
            return replace(base, outcome=FiringOutcome.SUPPRESSED, detail=f"held by {sound.suppressed_by}")
        late = now - sound.start
        late_s = late.total_seconds()
        if late > self.grace:
            remaining = (sound.end - now).total_seconds()
            keeps_playing = sound.layer == "emergency" or sound.play_if_missed
            if sound.action == "play" and keeps_playing and remaining >= 1:
                detail = f"{late_s:.0f} s late; playing the last {remaining:.0f} s"
                return replace(base, detail=detail, duration_s=round(remaining), deadline=sound.end)
            if sound.action == "stop" and sound.layer == "emergency":
                return replace(base, detail=f"{late_s:.0f} s late", deadline=now + self.command_deadline)
            return replace(base, outcome=FiringOutcome.MISSED, detail=f"houqin was not running; {late_s:.0f} s late")
        duration = max(1, round((sound.end - sound.start).total_seconds())) if sound.action == "play" else None
        deadline = sound.start + self.grace if sound.layer != "emergency" else max(sound.end, now + self.grace)
        return replace(base, duration_s=duration, deadline=deadline)

    def _next_due(self, now: datetime) -> datetime | None:
        upcoming: list[datetime] = []
        for timeline in self._plan.values():
            if timeline.zone.holds_state:
                change = timeline.next_change(now)
                if change is not None:
                    upcoming.append(change)
            else:
                upcoming += [sound.start for sound in timeline.sounds() if sound.start > now][:1]
        return min(upcoming, default=None)

    # --- the component ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    due = await self.tick()
                except Exception:
                    log.exception("scheduler pass failed; trying again in 1 s")
                    due = None
                wait = RENEW_SECONDS if not self.active else 1.0
                if due is not None:
                    wait = min(wait, max(0.0, (due - self.clock()).total_seconds()))
                stopping = asyncio.ensure_future(stop.wait())
                replanning = asyncio.ensure_future(self._stale.wait())
                await asyncio.wait([stopping, replanning], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                replanning.cancel()
                if replanning.done() and not stop.is_set():
                    await self._changes_pause(due)
        finally:
            await self.release()

    async def _changes_pause(self, due: datetime | None) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            seen = self._changes
            left = REPLAN_SETTLE_MAX - (loop.time() - started)
            if due is not None:
                left = min(left, (due - self.clock()).total_seconds())
            if left <= 0:
                return
            await asyncio.sleep(min(REPLAN_SETTLE, left))
            if self._changes == seen:
                return
