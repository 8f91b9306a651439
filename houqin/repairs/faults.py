"""Faults in the SQL store, and the repair orders they open, reopen, annotate and resolve.

Every step is a conditional write, so two houqin processes watching the same device (sharing one
PostgreSQL) cannot open two faults or two orders for one problem: the unique index admits one fault per
rule and device that is not cleared, and only the process whose ``pending → active`` update changed the
row opens the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.repairs.orders import ACTIVE, FINISHED, NewOrder, RepairDesk
from houqin.store import Database
from houqin.store.tables import Fault, FaultState, Priority, RepairOrder


@dataclass(frozen=True)
class FaultSpec:
    """What a rule says about its fault on one device."""

    rule_id: str
    device: str
    severity: str
    category: str
    priority: Priority
    title: str
    building: str | None = None
    floor: int | None = None
    room: str | None = None
    open_order: bool = True
    auto_resolve: bool = False  # resolve the order when the fault clears before work started


@dataclass(frozen=True)
class OrderChange:
    """What happened to an order because of a fault, for the notifier: ``opened``, ``reopened``, ``resolved``."""

    order: RepairOrder
    change: str


class FaultBook:
    def __init__(self, database: Database, desk: RepairDesk) -> None:
        self.database = database
        self.desk = desk

    async def open_faults(self) -> list[Fault]:
        """Pending and active faults: the rules engine resumes them after a restart."""
        async with self.database.session() as session:
            rows = await session.execute(select(Fault).where(Fault.state != FaultState.CLEARED))
            return list(rows.scalars())

    async def pending(self, spec: FaultSpec, since: datetime, value: float | None) -> Fault:
        """Record that the condition began; the fault already open for this rule and device if there is one."""
        async with self.database.session() as session:
            fault = Fault(rule_id=spec.rule_id, device=spec.device, state=FaultState.PENDING, severity=spec.severity,
                          title=spec.title[:255], value=value, started_at=since)  # fmt: skip
            session.add(fault)
            try:
                await session.commit()
                return fault
            except IntegrityError:
                await session.rollback()
            existing = await session.execute(
                select(Fault).where(
                    Fault.rule_id == spec.rule_id, Fault.device == spec.device, Fault.state != FaultState.CLEARED
                )
            )
            return existing.scalar_one()

    async def discard(self, fault_id: int) -> None:
        """The condition ended before it lasted long enough: it was noise, not a fault."""
        async with self.database.session() as session:
            await session.execute(delete(Fault).where(Fault.id == fault_id, Fault.state == FaultState.PENDING))
            await session.commit()

    async def activate(
        self, fault_id: int, spec: FaultSpec, now: datetime, value: float | None, returns_within: timedelta
    ) -> OrderChange | None:
        """The condition lasted: the fault is active and has an order (a new one, or its recently resolved
        one reopened). None when another process activated it first."""
        async with self.database.session() as session:
            changed = await session.execute(
                update(Fault)
                .where(Fault.id == fault_id, Fault.state == FaultState.PENDING)
                .values(state=FaultState.ACTIVE, activated_at=now, value=value, title=spec.title[:255])
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return None
            result = None
            if spec.open_order:
                result = await self._order_for(session, spec, now, returns_within)
                await session.execute(update(Fault).where(Fault.id == fault_id).values(repair_order_id=result.order.id))
            await session.commit()
            return result

    async def _order_for(
        self, session: AsyncSession, spec: FaultSpec, now: datetime, returns_within: timedelta
    ) -> OrderChange:
        previous = (
            await session.execute(
                select(RepairOrder)
                .join(Fault, Fault.repair_order_id == RepairOrder.id)
                .where(Fault.rule_id == spec.rule_id, Fault.device == spec.device, Fault.state == FaultState.CLEARED)
                .order_by(Fault.cleared_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if previous is not None and previous.status in ACTIVE:
            self.desk.note(session, previous, None, now, f"the fault is back: {spec.title}")
            return OrderChange(previous, "noted")
        if (
            previous is not None
            and previous.status in FINISHED
            and previous.resolved_at is not None
            and now - previous.resolved_at <= returns_within
        ):
            self.desk.reopen(session, previous, None, now, f"the fault came back: {spec.title}")
            return OrderChange(previous, "reopened")
        order = await self.desk.open(
            session,
            NewOrder(
                title=spec.title, category=spec.category, priority=spec.priority, building=spec.building,
                floor=spec.floor, room=spec.room, device=spec.device, rule_id=spec.rule_id,
                description=f"Opened by rule {spec.rule_id} ({spec.severity}).",
            ),
            now,
        )  # fmt: skip
        return OrderChange(order, "opened")

    async def clear(self, fault_id: int, now: datetime, auto_resolve: bool) -> OrderChange | None:
        """The clear condition held: the fault is over; its order hears of it (and may be resolved)."""
        async with self.database.session() as session:
            fault = await session.get(Fault, fault_id)
            if fault is None or fault.state == FaultState.CLEARED:
                return None
            fault.state = FaultState.CLEARED
            fault.cleared_at = now
            result = None
            order = await session.get(RepairOrder, fault.repair_order_id) if fault.repair_order_id else None
            if order is not None and order.status in ACTIVE:
                self.desk.note(session, order, None, now, f"fault cleared at {now:%Y-%m-%d %H:%M:%S} UTC")
                if auto_resolve and order.started_at is None:
                    self.desk.resolve(session, order, None, now, "the fault cleared before work started")
                    result = OrderChange(order, "resolved")
            await session.commit()
            return result
