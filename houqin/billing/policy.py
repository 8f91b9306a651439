"""What a room's balance and load do to its power.

- **Low balance**: each configured threshold the balance falls to is told to the room once per crossing
  (rising above re-arms it).
- **Cut-off**: a room whose balance reaches the cut-off level loses power; inside the protected window
  (say 22:00-07:00) the cut waits for the window's end, and is dropped if the room is topped up first.
- **Restore**: as soon as the balance is above the restore level again.
- **Overload trip**: a room drawing more than its power limit for ``trip_after_s`` loses power for
  ``trip_restore_min`` (its trips are counted), then gets it back unless it is cut off for money.

The wallet's state, the room's notice and the relay command are written in the same transaction as the
ledger entry that caused them, so a crash can leave neither a cut room with money nor a paid room in the
dark; command keys name their cause, so nothing is switched twice. The timed parts (a deferred cut, the
end of a trip) are conditional updates made by ``sweep``, so two houqin processes do them once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.billing.ledger import WalletAfter
from houqin.billing.ledger import post as post_entry
from houqin.billing.switching import RoomSwitches, active_causes
from houqin.commands import CommandQueue
from houqin.daily_span import within
from houqin.inventory import Inventory
from houqin.inventory.circuits import CutCause
from houqin.inventory.power import AppliancePolicy
from houqin.settings import BillingSettings
from houqin.store import Database
from houqin.store.tables import (
    EntryKind,
    LedgerEntry,
    NoticeKind,
    PowerEventKind,
    RoomNotice,
    RoomPowerEvent,
    Wallet,
    WalletState,
)
from houqin.ticker import run_every

log = logging.getLogger(__name__)

SWEEP_S = 15.0


@dataclass(frozen=True)
class ApplianceSeen:
    """What tripped a room: the step over where its power stood, and the power factor if the meter has one."""

    step_w: float
    power_w: float
    power_factor: float | None = None

    def describe_pf(self) -> str:
        return "" if self.power_factor is None else f", power factor {self.power_factor:.2f}"


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f} yuan"


def notice(
    session: AsyncSession, room: str, kind: NoticeKind, now: datetime, message: str, balance: int | None
) -> None:
    session.add(RoomNotice(room=room, kind=kind, balance_fen=balance, message=message, created_at=now))


class PowerPolicy:
    name = "power-policy"

    def __init__(
        self,
        inventory: Inventory,
        commands: CommandQueue | None,
        billing: BillingSettings | None = None,
        timezone: ZoneInfo = ZoneInfo("UTC"),
        database: Database | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        billing = billing or BillingSettings()
        self.inventory = inventory
        self.commands = commands
        self.database = database
        self.timezone = timezone
        self.clock = clock
        self.cutoff_fen = billing.cutoff_fen
        self.restore_fen = max(billing.restore_fen, billing.cutoff_fen)
        self.thresholds = sorted({fen for fen in billing.low_balance_fen if fen > billing.cutoff_fen}, reverse=True)
        self.window = billing.window
        self.switches = RoomSwitches(inventory)

    def protected(self, now: datetime) -> bool:
        return self.window is not None and within(now.astimezone(self.timezone).time(), *self.window)

    async def post(
        self,
        session: AsyncSession,
        room_id: str,
        kind: EntryKind,
        amount_fen: int,
        now: datetime,
        *,
        key: str,
        cause: str,
        note: str = "",
        kwh: float | None = None,
        circuit: str | None = None,
    ) -> LedgerEntry | None:
        """Post a ledger entry (``ledger.post``) and apply the policy to the balance it leaves."""
        posted = await post_entry(session, room_id, kind, amount_fen, now, key=key, cause=cause, note=note,
                                  kwh=kwh, circuit=circuit)  # fmt: skip
        if posted is None:
            return None
        entry, wallet = posted
        await self.after(session, room_id, entry, now, wallet)
        return entry

    async def after(
        self, session: AsyncSession, room_id: str, entry: LedgerEntry, now: datetime, wallet: WalletAfter
    ) -> None:
        """Apply the policy to the room after ``entry`` moved its balance to ``wallet`` (caller's
        transaction, which holds the wallet's row lock)."""
        balance = entry.balance_after_fen
        level = sum(1 for threshold in self.thresholds if balance <= threshold)
        values: dict[str, object] = {}
        if level != wallet.low_level:
            values["low_level"] = level
            if level > wallet.low_level and balance > self.cutoff_fen:
                crossed = self.thresholds[level - 1]
                notice(session, room_id, NoticeKind.LOW_BALANCE, now, f"Balance {yuan(balance)}: at or below "
                       f"{yuan(crossed)}. Top up to keep the power on.", balance)  # fmt: skip
        state = wallet.state
        others = active_causes(None, wallet.locked, wallet.curfew, wallet.tripped_until, now)
        if state != WalletState.CUT_OFF and balance <= self.cutoff_fen:
            if self.protected(now):
                if not wallet.cut_deferred:
                    values["cut_deferred"] = True
                    notice(session, room_id, NoticeKind.CUT_DEFERRED, now,
                           f"Balance {yuan(balance)}: power will be cut "
                           f"when the night ends ({self.window[1]:%H:%M}) unless the room is topped up.",  # type: ignore[index]
                           balance)  # fmt: skip
            else:
                state = WalletState.CUT_OFF
                values["cut_deferred"] = False
                notice(session, room_id, NoticeKind.CUT_OFF, now, f"Balance {yuan(balance)}: power cut. It returns as "
                       "soon as the room is topped up.", balance)  # fmt: skip
                await self._switch(session, room_id, CutCause.BALANCE, "off", others, now, f"balance {balance} fen",
                                   f"cut:{entry.id}")  # fmt: skip
        elif state == WalletState.CUT_OFF and balance > self.restore_fen:
            state = WalletState.NORMAL
            if wallet.locked:
                notice(session, room_id, NoticeKind.RESTORED, now, f"Balance {yuan(balance)}. The room stays off: "
                       "it is locked after repeated high-power appliances; the dorm office unlocks it.",
                       balance)  # fmt: skip
            elif wallet.curfew:
                notice(session, room_id, NoticeKind.RESTORED, now, f"Balance {yuan(balance)}. Power returns when "
                       "the night's curfew ends.", balance)  # fmt: skip
            else:
                notice(session, room_id, NoticeKind.RESTORED, now, f"Balance {yuan(balance)}: power restored.",
                       balance)  # fmt: skip
            await self._switch(session, room_id, CutCause.BALANCE, "on", others, now, f"balance {balance} fen",
                               f"restore:{entry.id}")  # fmt: skip
        elif wallet.cut_deferred and balance > self.cutoff_fen:
            values["cut_deferred"] = False
        if state != WalletState.CUT_OFF:
            state = WalletState.LOW if level else WalletState.NORMAL
        if state != wallet.state:
            values["state"] = state
        if values:
            await session.execute(update(Wallet).where(Wallet.room == room_id).values(**values))

    @staticmethod
    def _tripped(wallet: WalletAfter, now: datetime) -> bool:
        return wallet.tripped_until is not None and wallet.tripped_until > now

    async def trip(self, room_id: str, now: datetime, limit_w: float, drawn_w: float, restore_after: timedelta) -> bool:
        """The room drew more than its limit for too long: power off until ``now + restore_after``. False
        when it is tripped already (another process, or a reading that came late)."""
        assert self.database is not None
        async with self.database.session() as session:
            tripped = await session.execute(
                update(Wallet)
                .where(Wallet.room == room_id, (Wallet.tripped_until.is_(None)) | (Wallet.tripped_until <= now))
                .values(tripped_until=now + restore_after, trips=Wallet.trips + 1)
                .returning(Wallet.trips, Wallet.state, Wallet.locked, Wallet.curfew)
            )
            row = tripped.first()
            if row is None:
                return False
            trips, state, locked, curfew = row
            minutes = restore_after.total_seconds() / 60
            notice(session, room_id, NoticeKind.TRIPPED, now,
                   f"Overload: {drawn_w:.0f} W drawn, the limit is {limit_w:.0f} W. "
                   f"Power is off for {minutes:g} min (trip {trips}).", None)  # fmt: skip
            await self._switch(session, room_id, CutCause.TRIP, "off", active_causes(state, locked, curfew, None, now),
                               now, f"overload {drawn_w:.0f} W > {limit_w:.0f} W", f"trip:{trips}")  # fmt: skip
            await session.commit()
            return True

    async def appliance_trip(self, room_id: str, now: datetime, seen: ApplianceSeen, rule: AppliancePolicy) -> bool:
        """A high-power appliance in the room: off for the policy's minutes, or locked when this is the
        ``lock_after``-th trip within its window. False when the room is tripped or locked already."""
        assert self.database is not None
        restore_at = now + timedelta(minutes=rule.restore_min)
        async with self.database.session() as session:
            earlier = await session.scalar(
                select(func.count()).select_from(RoomPowerEvent).where(
                    RoomPowerEvent.room == room_id, RoomPowerEvent.kind == PowerEventKind.APPLIANCE_TRIP,
                    RoomPowerEvent.at > now - timedelta(minutes=rule.lock_window_min)))  # fmt: skip
            count = int(earlier or 0) + 1
            lock = count >= rule.lock_after
            tripped = await session.execute(
                update(Wallet)
                .where(Wallet.room == room_id, Wallet.locked.is_(False),
                       (Wallet.tripped_until.is_(None)) | (Wallet.tripped_until <= now))
                .values(tripped_until=None if lock else restore_at, trips=Wallet.trips + 1, locked=lock)
                .returning(Wallet.state, Wallet.curfew)
            )  # fmt: skip
            row = tripped.first()
            if row is None:
                return False
            state, curfew = row
            what = f"a high-power appliance (+{seen.step_w:.0f} W{seen.describe_pf()})"
            session.add(RoomPowerEvent(room=room_id, kind=PowerEventKind.APPLIANCE_TRIP, at=now, reason=what,
                                       step_w=seen.step_w, power_factor=seen.power_factor,
                                       restore_at=None if lock else restore_at))  # fmt: skip
            if lock:
                why = f"{count} appliance trips within {rule.lock_window_min:g} min"
                session.add(RoomPowerEvent(room=room_id, kind=PowerEventKind.LOCKED, at=now, reason=why))
                notice(session, room_id, NoticeKind.LOCKED, now,
                       f"Power off: {what}, the {count}th time within {rule.lock_window_min:g} min. The room stays "
                       "off until the dorm office unlocks it.", None)  # fmt: skip
            else:
                local = restore_at.astimezone(self.timezone)
                notice(session, room_id, NoticeKind.APPLIANCE, now,
                       f"Power off: {what}; kettles, heaters and cookers are not allowed in dorm rooms. It comes "
                       f"back at {local:%H:%M} (trip {count} of {rule.lock_after} before the room is locked).",
                       None)  # fmt: skip
            await self._switch(session, room_id, CutCause.LOCK if lock else CutCause.TRIP, "off",
                               active_causes(state, False, curfew, None, now), now, what,
                               f"appliance:{now:%Y%m%d%H%M%S}")  # fmt: skip
            await session.commit()
            return True

    async def lock(self, room_id: str, now: datetime, by: str, reason: str) -> bool:
        """Staff lock a room (a violation found on inspection): off, whatever the balance, until unlocked.
        False when it is locked already."""
        assert self.database is not None
        async with self.database.session() as session:
            locked = await session.execute(
                update(Wallet).where(Wallet.room == room_id, Wallet.locked.is_(False))
                .values(locked=True, tripped_until=None).returning(Wallet.state, Wallet.curfew, Wallet.tripped_until)
            )  # fmt: skip
            row = locked.first()
            if row is None:
                return False
            state, curfew, _ = row
            session.add(RoomPowerEvent(room=room_id, kind=PowerEventKind.LOCKED, at=now, reason=reason, by=by))
            notice(session, room_id, NoticeKind.LOCKED, now, f"Power off: the dorm office locked the room ({reason}).",
                   None)  # fmt: skip
            await self._switch(session, room_id, CutCause.LOCK, "off", active_causes(state, False, curfew, None, now),
                               now, f"locked by {by}: {reason}", f"lock:{now:%Y%m%d%H%M%S}")  # fmt: skip
            await session.commit()
            return True

    async def unlock(self, room_id: str, now: datetime, by: str, reason: str) -> bool:
        """Staff unlock a room locked for appliances; power returns unless money or a trip keeps it off.
        False when the room was not locked."""
        assert self.database is not None
        async with self.database.session() as session:
            unlocked = await session.execute(
                update(Wallet).where(Wallet.room == room_id, Wallet.locked.is_(True)).values(locked=False)
                .returning(Wallet.state, Wallet.tripped_until, Wallet.curfew)
            )  # fmt: skip
            row = unlocked.first()
            if row is None:
                return False
            state, tripped_until, curfew = row
            session.add(RoomPowerEvent(room=room_id, kind=PowerEventKind.UNLOCKED, at=now, reason=reason, by=by))
            others = active_causes(state, False, curfew, tripped_until, now)
            then = ": power restored." if not others else "; power returns once the balance allows it."
            notice(session, room_id, NoticeKind.UNLOCKED, now, "Unlocked by the dorm office" + then, None)
            await self._switch(session, room_id, CutCause.LOCK, "on", others, now, f"unlocked by {by}: {reason}",
                               f"unlock:{now:%Y%m%d%H%M%S}")  # fmt: skip
            await session.commit()
            return True

    async def sweep(self, now: datetime) -> None:
        """Carry out what waited for a time: deferred cuts once the protected window is over, and the end
        of trips."""
        assert self.database is not None
        async with self.database.session() as session:
            if not self.protected(now):
                cut = await session.execute(
                    update(Wallet)
                    .where(Wallet.cut_deferred.is_(True), Wallet.state != WalletState.CUT_OFF,
                           Wallet.balance_fen <= self.cutoff_fen)
                    .values(cut_deferred=False, state=WalletState.CUT_OFF, updated_at=now)
                    .returning(Wallet.room, Wallet.balance_fen, Wallet.locked, Wallet.curfew, Wallet.tripped_until)
                )  # fmt: skip
                for room_id, balance, locked, curfew, tripped_until in cut.all():
                    notice(session, room_id, NoticeKind.CUT_OFF, now,
                           f"Balance {yuan(balance)}: power cut at the end of "
                           "the protected hours. It returns as soon as the room is topped up.", balance)  # fmt: skip
                    others = active_causes(None, locked, curfew, tripped_until, now)
                    await self._switch(session, room_id, CutCause.BALANCE, "off", others, now,
                                       f"balance {balance} fen (deferred)",
                                       f"deferred-cut:{now:%Y%m%d%H%M%S}")  # fmt: skip
            ended = await session.execute(
                update(Wallet)
                .where(Wallet.tripped_until.is_not(None), Wallet.tripped_until <= now)
                .values(tripped_until=None)
                .returning(Wallet.room, Wallet.state, Wallet.trips, Wallet.locked, Wallet.curfew)
            )
            for room_id, state, trips, locked, curfew in ended.all():
                # Money keeps its switches off (a top-up restores them), a lock (staff), the curfew (its end).
                others = active_causes(state, locked, curfew, None, now)
                if not others:
                    notice(session, room_id, NoticeKind.TRIP_RESTORED, now, "Power restored after the overload trip.",
                           None)  # fmt: skip
                await self._switch(session, room_id, CutCause.TRIP, "on", others, now, "trip over",
                                   f"trip-restore:{trips}")  # fmt: skip
            await session.commit()

    async def run(self, stop: asyncio.Event) -> None:
        await run_every(stop, SWEEP_S, lambda: self.sweep(self.clock()), "power policy sweep")

    async def _switch(
        self, session: AsyncSession, room_id: str, cause: CutCause, action: str, others: frozenset[CutCause],
        now: datetime, why: str, key: str,
    ) -> None:  # fmt: skip
        """Switch what ``cause`` beginning (``off``) or ending (``on``) switches, in the caller's transaction."""
        if self.commands is None:
            return
        for request in self.switches.requests(room_id, cause, action, others, why, key):
            await self.commands.enqueue_in(session, request, now)
        log.info("room %s: %s power %s (%s)", room_id, cause, action, why)
