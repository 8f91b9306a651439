"""Billing from the meters: a pipeline sink that charges each room for the energy its meter has counted.

For each reading of a room meter's cumulative energy register, in a transaction with the meter's billing state
(locked; a pipeline batch's readings share a transaction, in the order they came): a reading not newer
than the last one charged is ignored (late or twice: charged once); the first reading only sets where billing
starts; a register that went down (a reset or a new meter) rebases without a charge; a rise larger than the
room could draw in the time (``max_room_kw``) rebases without a charge too, and both are recorded as billing
events. A jump also raises a fault (rule ``billing_jump`` on the meter), which opens a repair order for the
meter's team: someone should look at a meter that counts what nobody drew. The fault clears at the next window
billed normally.

Otherwise the advance is priced by the tariff's periods, the month's free allowance is used first, and
whole fen are charged with the sub-fen remainder carried to the next charge. Ledger keys name the meter
and the reading's time, so even a replayed transaction cannot charge twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.billing.allowances import allowance_pool
from houqin.billing.ledger import post
from houqin.billing.policy import PowerPolicy
from houqin.billing.pricing import MICRO, price_usage
from houqin.inventory import Inventory
from houqin.inventory.circuits import ENERGY_REGISTER, BilledRegister
from houqin.inventory.model import Room
from houqin.readings import Reading
from houqin.repairs.faults import FaultBook, FaultSpec, OrderChange
from houqin.store import Database
from houqin.store.tables import BillingEvent, BillingEventKind, EntryKind, MeterBilling, Priority

log = logging.getLogger(__name__)

ENERGY = "energy"
JUMP_RULE = "billing_jump"
CHARGES_PER_TRANSACTION = 200  # a pipeline batch's charges, in transactions of at most this many
# PostgreSQL's deadlock, serialization failure and unique violation: two processes billing one meter at once.
CONTENDED = frozenset({"40P01", "40001", "23505"})


@dataclass(frozen=True, slots=True)
class Charge:
    """One reading of a billed register: what ``RoomBilling`` charges from."""

    register: BilledRegister
    ts: datetime
    kwh: float


def _contended(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in CONTENDED


class RoomBilling:
    """A pipeline sink: room meter readings in, ledger charges out (one charge per billed register: a room's
    meter, or each of its circuits)."""

    # The pipeline gathers billing's readings for this long: a batch is one transaction, and half a second
    # of a campus's meters is one round of locks and a commit instead of one per reading (a cut at zero
    # comes half a second later at most; top-ups do not go this way).
    gather_s = 0.5

    def __init__(
        self,
        database: Database,
        inventory: Inventory,
        timezone: ZoneInfo,
        max_room_kw: float = 10.0,
        policy: PowerPolicy | None = None,
        faults: FaultBook | None = None,
        on_order_change: Callable[[OrderChange], Awaitable[None]] | None = None,
    ) -> None:
        self.policy = policy
        self.faults = faults
        self.on_order_change = on_order_change
        self._jump_faults: dict[str, int] | None = None  # meter -> open billing_jump fault, loaded once
        self._jumping: dict[str, set[str]] = {}  # meter -> its registers that jumped and have not billed since
        self.database = database
        self.inventory = inventory
        self.timezone = timezone
        self.max_room_kw = max_room_kw
        self.registers: dict[str, list[BilledRegister]] = {}
        for room in inventory.rooms.values():
            for register in inventory.registers(room):
                self.registers.setdefault(register.meter, []).append(register)
        self.charged_fen = 0

    @property
    def name(self) -> str:
        return "billing"

    async def consume(self, readings: Sequence[Reading]) -> None:
        charges = [Charge(register, reading.ts, energy) for reading in readings
                   for register in self.registers.get(reading.device, ())
                   if (energy := reading.number(register.register)) is not None]  # fmt: skip
        for start in range(0, len(charges), CHARGES_PER_TRANSACTION):
            group = charges[start : start + CHARGES_PER_TRANSACTION]
            try:
                jumps = await self._bill_together(group)
            except DBAPIError as exc:
                if not _contended(exc):
                    raise
                # Another process billed one of these meters at the same moment (a takeover): each charge
                # alone, where the loser of a race sees the winner's row.
                log.info("billing: %d charges contended (%s); billed one at a time", len(group), exc.orig)
                jumps = [jump for charge in group for jump in await self._bill_together([charge])]
            if self.faults is not None:
                for charge, jump in zip(group, jumps, strict=True):
                    await self._jump_fault(self.inventory.rooms[charge.register.room], charge.register, charge.ts,
                                           jump)  # fmt: skip

    async def _bill_together(self, charges: Sequence[Charge]) -> list[str | None]:
        """Bill ``charges`` in one transaction, in their order (which circuit a shared allowance goes to, which
        charge cuts the power): per charge, what was wrong if it was a jump, else None. Their meters' billing
        rows are locked first, all at once in meter order, so two processes billing the same meters during a
        takeover queue up instead of deadlocking. One transaction per pipeline batch rather than per reading:
        the transactions' round trips were most of a billing process's CPU."""
        async with self.database.session() as session:
            keys = sorted({charge.register.key for charge in charges})
            rows = await session.scalars(select(MeterBilling).where(MeterBilling.meter.in_(keys))
                                         .order_by(MeterBilling.meter).with_for_update())  # fmt: skip
            states = {state.meter: state for state in rows}
            jumps = [await self._bill(session, self.inventory.rooms[charge.register.room], charge.register,
                                      charge.ts, charge.kwh, states) for charge in charges]  # fmt: skip
            await session.commit()
        return jumps

    async def _jump_fault(self, room: Room, register: BilledRegister, ts: datetime, jump: str | None) -> None:
        """Raise the meter's jump fault (and its repair order), or clear it once every register of the meter
        that jumped has billed a normal window."""
        assert self.faults is not None
        meter = register.meter
        if self._jump_faults is None:
            self._jump_faults = {fault.device: fault.id for fault in await self.faults.open_faults()
                                 if fault.rule_id == JUMP_RULE}  # fmt: skip
            self._jumping = {device: {r.key for r in self.registers.get(device, ())} for device in self._jump_faults}
        open_fault = self._jump_faults.get(meter)
        if jump is None:
            jumping = self._jumping.get(meter, set())
            jumping.discard(register.key)
            if open_fault is not None and not jumping:
                del self._jump_faults[meter]
                await self.faults.clear(open_fault, ts, auto_resolve=False)
            return
        self._jumping.setdefault(meter, set()).add(register.key)
        if open_fault is not None:
            return
        where = f"Room {room.id}" if register.circuit is None else f"Room {room.id} ({register.circuit})"
        spec = FaultSpec(rule_id=JUMP_RULE, device=meter, severity="warning", category="meter",
                         priority=Priority.NORMAL, title=f"{where}: meter {meter} jumped; {jump}",
                         building=room.building, floor=room.floor, room=room.id)  # fmt: skip
        fault = await self.faults.pending(spec, ts, None)
        self._jump_faults[meter] = fault.id
        change = await self.faults.activate(fault.id, spec, ts, None, timedelta(days=7))
        if change is not None and self.on_order_change is not None:
            await self.on_order_change(change)

    async def _bill(
        self,
        session: AsyncSession,
        room: Room,
        register: BilledRegister,
        ts: datetime,
        kwh: float,
        states: dict[str, MeterBilling],
    ) -> str | None:
        """Charge the reading; what was wrong if it was a jump (not charged), else None. ``states``: the
        billing rows locked by the transaction, by register key (a register's first row is added to it)."""
        key = register.key
        state = states.get(key)
        month = ts.astimezone(self.timezone).strftime("%Y-%m")
        if state is None:
            states[key] = MeterBilling(meter=key, room=room.id, last_ts=ts, last_kwh=kwh, carry_micro_fen=0,
                                       month=month)  # fmt: skip
            session.add(states[key])
            what = "" if register.circuit is None else f" ({_what(register)})"
            session.add(BillingEvent(room=room.id, meter=register.meter, kind=BillingEventKind.FIRST, at=ts,
                                     after_kwh=kwh, note=f"billing starts from this reading{what}"))  # fmt: skip
            return None
        if ts <= state.last_ts:
            return None  # late or repeated: this energy was charged (or skipped) already
        delta = kwh - state.last_kwh
        hours = (ts - state.last_ts).total_seconds() / 3600
        if delta < 0 or delta > self.max_room_kw * hours + 0.01:
            kind = BillingEventKind.RESET if delta < 0 else BillingEventKind.JUMP
            if delta < 0:
                note = "the register went down: meter reset or replaced"
            else:
                note = f"{delta:.3f} kWh in {_duration(hours)} is more than {self.max_room_kw:g} kW could draw"
            if register.circuit is not None:
                note += f" ({_what(register)})"
            session.add(BillingEvent(room=room.id, meter=register.meter, kind=kind, at=ts, before_kwh=state.last_kwh,
                                     after_kwh=kwh, note=note))  # fmt: skip
            log.warning("billing %s (%s): %s; not charged, billing continues from %.3f kWh", room.id, key, note, kwh)
            state.last_ts, state.last_kwh = ts, kwh
            return note if kind == BillingEventKind.JUMP else None
        tariff = self.inventory.tariffs[register.tariff]
        allowance = tariff.free_kwh(room.beds)
        # Circuits on one tariff share the room's allowance of it; the room's own tariff is pool "".
        pool = None
        if allowance > 0:
            pool = await allowance_pool(session, room.id, "" if register.tariff == room.tariff else register.tariff,
                                        state.month)  # fmt: skip
        stamp = f"{key}:{ts.isoformat()}"
        window = f"{_what(register)} {state.last_ts.isoformat()}..{ts.isoformat()}"
        free_before = 0.0
        if state.month != month:
            # The window crosses into a new month: the part before the boundary (in proportion to time)
            # may still use the old month's allowance, the rest starts the new month's.
            local = ts.astimezone(self.timezone)
            boundary = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
            if state.last_ts < boundary and pool is not None:
                before = delta * (boundary - state.last_ts) / (ts - state.last_ts)
                free_before = min(before, max(0.0, allowance - pool.used_in(state.month)))
                if free_before > 0:
                    pool.add(state.month, free_before)
                    # Stamped just before the boundary, so each month's statement counts its own allowance.
                    await post(session, room.id, EntryKind.ALLOWANCE, 0, boundary - timedelta(milliseconds=1),
                               key=f"allowance-prev:{stamp}", cause=window, kwh=free_before, circuit=register.circuit,
                               note=f"{free_before:.3f} kWh of {state.month}'s free allowance")  # fmt: skip
            delta_now = delta - delta * max(0.0, (boundary - state.last_ts) / (ts - state.last_ts))
            state.month = month
        else:
            delta_now = delta
        free_now = 0.0
        if pool is not None:
            pool.advance(month)
            free_now = min(delta_now, max(0.0, allowance - pool.used_in(month)))
            pool.add(month, free_now)
        free = free_before + free_now
        slices = price_usage(tariff, state.last_ts, ts, delta, self.timezone)
        cost_micro = sum(piece.cost_micro_fen for piece in slices)
        if delta > 0:
            cost_micro = round(cost_micro * (delta - free) / delta)
        total = state.carry_micro_fen + cost_micro
        fen, carry = divmod(total, MICRO)
        if free_now > 0:
            await post(session, room.id, EntryKind.ALLOWANCE, 0, ts, key=f"allowance:{stamp}", cause=window,
                       kwh=free_now, circuit=register.circuit,
                       note=f"{free_now:.3f} kWh of the free monthly allowance")  # fmt: skip
        if fen > 0:
            periods = ", ".join(f"{p.period} {p.kwh:.3f} kWh × {p.price_fen_per_kwh} fen" for p in slices)
            poster = self.policy.post if self.policy is not None else _post_plain
            await poster(session, room.id, EntryKind.CHARGE, -fen, ts, key=f"charge:{stamp}", cause=window,
                         kwh=delta - free, note=periods, circuit=register.circuit)  # fmt: skip
            self.charged_fen += fen
        state.last_ts, state.last_kwh = ts, kwh
        state.carry_micro_fen = carry
        return None


async def _post_plain(session: AsyncSession, room: str, kind: EntryKind, amount_fen: int, now: datetime, *,
                      key: str, cause: str, note: str = "", kwh: float | None = None,
                      circuit: str | None = None) -> None:  # fmt: skip
    await post(session, room, kind, amount_fen, now, key=key, cause=cause, note=note, kwh=kwh, circuit=circuit)


def _what(register: BilledRegister) -> str:
    """The register as the ledger names it: ``meter m``, or ``meter m energy_ac (circuit ac)``."""
    if register.circuit is None:
        return f"meter {register.meter}"
    if register.register == ENERGY_REGISTER:
        return f"meter {register.meter} (circuit {register.circuit})"
    return f"meter {register.meter} {register.register} (circuit {register.circuit})"


def _duration(hours: float) -> str:
    """A window's length as a person reads it: seconds under a minute ("0.250 kWh in 2 s", not "0.0 min")."""
    seconds = hours * 3600
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{hours:.1f} h"
