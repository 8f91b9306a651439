"""Repair orders: opening (numbered, assigned to the least-loaded member of the owning team, due by the
priority's service level), and every step after, each recorded as an event with who and when.

    open ──assign──► assigned ──start──► in_progress ──resolve──► resolved ──close──► closed
      └──────────────────┴─────────────────────┴──cancel (with a reason)──► cancelled
    resolved / closed ──reopen (within the reopen window)──► assigned (or open, with no assignee)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.inventory import Inventory
from houqin.settings import RepairSettings
from houqin.store.tables import (
    EventKind,
    OrderStatus,
    Priority,
    RepairCounter,
    RepairEvent,
    RepairOrder,
    Role,
    User,
)

SYSTEM = "houqin"  # the actor of what houqin does on its own


ACTIVE = (OrderStatus.OPEN, OrderStatus.ASSIGNED, OrderStatus.IN_PROGRESS)
FINISHED = (OrderStatus.RESOLVED, OrderStatus.CLOSED)


class RepairError(ValueError):
    """A step the order's state does not allow; the message says why."""


@dataclass(frozen=True)
class NewOrder:
    title: str
    category: str
    priority: Priority = Priority.NORMAL
    description: str = ""
    building: str | None = None
    floor: int | None = None
    room: str | None = None
    device: str | None = None
    rule_id: str | None = None  # set when a rule's fault opens the order
    reporter: User | None = None


class RepairDesk:
    """The repair-order service; one per process, used within the caller's session and transaction."""

    def __init__(self, inventory: Inventory, settings: RepairSettings, timezone: ZoneInfo) -> None:
        self.inventory = inventory
        self.settings = settings
        self.timezone = timezone

    async def open(self, session: AsyncSession, new: NewOrder, now: datetime) -> RepairOrder:
        if new.priority not in Priority.__members__.values():
            raise RepairError(f"unknown priority {new.priority!r}")
        team = self.inventory.team_for(new.category, new.building)
        order = RepairOrder(
            number=await self._next_number(session, now),
            title=new.title[:255],
            description=new.description,
            category=new.category,
            priority=str(new.priority),
            building=new.building,
            floor=new.floor,
            room=new.room,
            device=new.device,
            source="rule" if new.rule_id else "manual",
            rule_id=new.rule_id,
            reporter_id=new.reporter.id if new.reporter else None,
            status=OrderStatus.OPEN,
            team=team.id if team else None,
            due_at=now + timedelta(hours=self.settings.sla_hours[str(new.priority)]),
            created_at=now,
        )
        session.add(order)
        await session.flush()
        note = "" if team else f"no team owns the category {new.category!r}: staff must assign it"
        self._event(session, order, EventKind.CREATED, new.reporter, now, note)
        if team is not None:
            worker = await self._least_loaded(session, team.id)
            if worker is not None:
                await self.assign(session, order, worker, None, now)
        return order

    async def _next_number(self, session: AsyncSession, now: datetime) -> str:
        day = now.astimezone(self.timezone).strftime("%Y%m%d")
        for _ in range(3):
            # UPDATE ... RETURNING takes the row's lock: two processes never get the same number.
            last = (
                await session.execute(
                    update(RepairCounter)
                    .where(RepairCounter.day == day)
                    .values(last=RepairCounter.last + 1)
                    .returning(RepairCounter.last)
                )
            ).scalar_one_or_none()
            if last is not None:
                return f"R{day}-{last:04d}"
            try:
                async with session.begin_nested():
                    session.add(RepairCounter(day=day, last=1))
                return f"R{day}-0001"
            except IntegrityError:
                continue  # another process opened the day's first order: take the next number
        raise RepairError("could not number the repair order; try again")

    async def _least_loaded(self, session: AsyncSession, team: str) -> User | None:
        load = (
            select(RepairOrder.assignee_id, func.count().label("open"))
            .where(RepairOrder.status.in_([str(status) for status in ACTIVE]))
            .group_by(RepairOrder.assignee_id)
            .subquery()
        )
        query = (
            select(User)
            .outerjoin(load, load.c.assignee_id == User.id)
            .where(User.role == Role.WORKER.value, User.team == team, User.active.is_(True))
            .order_by(func.coalesce(load.c.open, 0), User.id)
            .limit(1)
        )
        return (await session.execute(query)).scalar_one_or_none()

    def _event(
        self,
        session: AsyncSession,
        order: RepairOrder,
        kind: EventKind,
        actor: User | None,
        now: datetime,
        note: str = "",
    ) -> RepairEvent:
        event = RepairEvent(
            order_id=order.id,
            kind=str(kind),
            actor_id=actor.id if actor else None,
            actor=actor.username if actor else SYSTEM,
            at=now,
            note=note,
            status=order.status,
        )
        session.add(event)
        return event

    def _require(self, order: RepairOrder, allowed: tuple[OrderStatus, ...], step: str) -> None:
        if order.status not in allowed:
            raise RepairError(f"{order.number} is {order.status}: it cannot be {step}")

    async def assign(
        self, session: AsyncSession, order: RepairOrder, worker: User, actor: User | None, now: datetime
    ) -> None:
        self._require(order, ACTIVE, "assigned")
        if worker.role != Role.WORKER.value or not worker.active:
            raise RepairError(f"{worker.username} is not an active maintenance worker")
        order.assignee_id = worker.id
        order.team = worker.team or order.team
        order.status = OrderStatus.ASSIGNED
        order.started_at = None
        self._event(session, order, EventKind.ASSIGNED, actor, now, f"to {worker.username}")

    def start(self, session: AsyncSession, order: RepairOrder, actor: User, now: datetime) -> None:
        self._require(order, (OrderStatus.OPEN, OrderStatus.ASSIGNED), "started")
        if order.assignee_id is None:
            order.assignee_id = actor.id  # a worker who takes an unassigned order is its assignee
        order.status = OrderStatus.IN_PROGRESS
        order.started_at = now
        self._event(session, order, EventKind.STARTED, actor, now)

    def note(self, session: AsyncSession, order: RepairOrder, actor: User | None, now: datetime, text: str) -> None:
        if not text.strip():
            raise RepairError("a note needs some text")
        self._event(session, order, EventKind.NOTE, actor, now, text.strip())

    def photo(self, session: AsyncSession, order: RepairOrder, actor: User, now: datetime, photo_id: int) -> None:
        """Record in the trail that a photo was attached (the photo itself is a ``RepairPhoto``)."""
        self._event(session, order, EventKind.PHOTO, actor, now, f"photo {photo_id}")

    def resolve(
        self, session: AsyncSession, order: RepairOrder, actor: User | None, now: datetime, note: str = ""
    ) -> None:
        self._require(order, ACTIVE, "resolved")
        order.status = OrderStatus.RESOLVED
        order.resolved_at = now
        self._event(session, order, EventKind.RESOLVED, actor, now, note)

    def close(self, session: AsyncSession, order: RepairOrder, actor: User | None, now: datetime) -> None:
        self._require(order, (OrderStatus.RESOLVED,), "closed")
        order.status = OrderStatus.CLOSED
        order.closed_at = now
        self._event(session, order, EventKind.CLOSED, actor, now)

    def reopen(self, session: AsyncSession, order: RepairOrder, actor: User | None, now: datetime, reason: str) -> None:
        self._require(order, FINISHED, "reopened")
        assert order.resolved_at is not None
        if now - order.resolved_at > timedelta(days=self.settings.reopen_within_days):
            raise RepairError(
                f"{order.number} was resolved more than {self.settings.reopen_within_days:g} days ago: "
                "report the problem again"
            )
        order.status = OrderStatus.ASSIGNED if order.assignee_id else OrderStatus.OPEN
        order.resolved_at = order.closed_at = order.started_at = None
        self._event(session, order, EventKind.REOPENED, actor, now, reason)

    def cancel(self, session: AsyncSession, order: RepairOrder, actor: User, now: datetime, reason: str) -> None:
        self._require(order, ACTIVE, "cancelled")
        if not reason.strip():
            raise RepairError("cancelling needs a reason")
        order.status = OrderStatus.CANCELLED
        self._event(session, order, EventKind.CANCELLED, actor, now, reason.strip())

    def rate(self, session: AsyncSession, order: RepairOrder, actor: User, now: datetime, stars: int) -> None:
        self._require(order, FINISHED, "rated")
        if not 1 <= stars <= 5:
            raise RepairError("a rating is 1 to 5 stars")
        order.rating = stars
        self._event(session, order, EventKind.RATED, actor, now, f"{stars} stars")

    async def housekeeping(self, session: AsyncSession, now: datetime) -> tuple[list[RepairOrder], list[RepairOrder]]:
        """Escalate what is overdue (once) and close what has stayed resolved long enough; returns both."""
        overdue = list(
            (
                await session.execute(
                    select(RepairOrder)
                    .where(
                        RepairOrder.status.in_([str(status) for status in ACTIVE]),
                        RepairOrder.due_at < now,
                        RepairOrder.escalated.is_(False),
                    )
                    # Every process may run the clock: one that finds an order locked by another's pass
                    # leaves it to that pass, so an order escalates (and is told) once.
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
        )
        for order in overdue:
            order.escalated = True
            self._event(session, order, EventKind.ESCALATED, None, now, f"overdue since {order.due_at:%Y-%m-%d %H:%M}")
        stale = list(
            (
                await session.execute(
                    select(RepairOrder)
                    .where(
                        RepairOrder.status == OrderStatus.RESOLVED,
                        RepairOrder.resolved_at < now - timedelta(days=self.settings.close_after_days),
                    )
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
        )
        for order in stale:
            self.close(session, order, None, now)
        return overdue, stale
