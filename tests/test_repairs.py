"""Repair orders and faults on SQLite and PostgreSQL: numbering, assignment, the lifecycle, and faults
that open, reopen, annotate and resolve orders without ever doubling them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from houqin.accounts import NewAccount, add_account, get_user
from houqin.inventory import Inventory
from houqin.repairs.faults import FaultBook, FaultSpec
from houqin.repairs.orders import NewOrder, RepairDesk, RepairError
from houqin.settings import RepairSettings
from houqin.store import Database
from houqin.store.tables import Fault, OrderStatus, Priority, RepairEvent, RepairOrder, Role, User
from tests.api_client import PASSWORD

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai


async def workers(database: Database, inventory: Inventory) -> dict[str, User]:
    async with database.session() as session:
        for name, team in (("zhang", "electrical"), ("wang", "electrical"), ("liu", "plumbing")):
            await add_account(session, NewAccount(name, Role.WORKER, PASSWORD, team=team), inventory)
        await add_account(session, NewAccount("li", Role.STAFF, PASSWORD), inventory)
        await add_account(session, NewAccount("alice", Role.STUDENT, PASSWORD, ("D1-101",)), inventory)
        await session.commit()
        return {name: user for name in ("zhang", "wang", "liu", "li", "alice")
                if (user := await get_user(session, name)) is not None}  # fmt: skip


async def test_orders_are_numbered_per_day_and_go_to_the_least_loaded_worker(
    database: Database, demo_inventory: Inventory
) -> None:
    people = await workers(database, demo_inventory)
    desk = RepairDesk(demo_inventory, RepairSettings(), TZ)
    async with database.session() as session:
        orders = [
            await desk.open(session, NewOrder(f"socket {n}", "electrical", Priority.HIGH, building="dorm-1"), NOW)
            for n in range(4)
        ]
        leak = await desk.open(session, NewOrder("leak", "plumbing", Priority.URGENT, reporter=people["alice"]), NOW)
        nobody = await desk.open(session, NewOrder("stage lights", "stage"), NOW)
        await session.commit()
    assert [o.number for o in orders] == [f"R20261123-{n:04d}" for n in range(1, 5)]
    assert leak.number == "R20261123-0005"
    assignees = [o.assignee_id for o in orders]
    assert sorted(assignees) == sorted([people["zhang"].id, people["wang"].id] * 2)  # two each
    assert leak.assignee_id == people["liu"].id and leak.status == OrderStatus.ASSIGNED
    assert leak.due_at == NOW + timedelta(hours=4)
    assert nobody.status == OrderStatus.OPEN and nobody.team is None
    async with database.session() as session:
        late = await desk.open(session, NewOrder("next day", "electrical"), NOW + timedelta(days=1))
        await session.commit()
    assert late.number == "R20261124-0001"


async def test_the_lifecycle_records_every_step(database: Database, demo_inventory: Inventory) -> None:
    people = await workers(database, demo_inventory)
    desk = RepairDesk(demo_inventory, RepairSettings(reopen_within_days=7), TZ)
    async with database.session() as session:
        order = await desk.open(session, NewOrder("door lock", "electrical", reporter=people["alice"]), NOW)
        worker = await session.get(User, order.assignee_id)
        assert worker is not None
        desk.start(session, order, worker, NOW + timedelta(minutes=5))
        desk.note(session, order, worker, NOW + timedelta(minutes=6), "needs a new cylinder")
        with pytest.raises(RepairError, match="cannot be closed"):
            desk.close(session, order, people["alice"], NOW)
        desk.resolve(session, order, worker, NOW + timedelta(hours=1), "replaced")
        desk.rate(session, order, people["alice"], NOW + timedelta(hours=2), 5)
        desk.reopen(session, order, people["alice"], NOW + timedelta(days=1), "sticks again")
        with pytest.raises(RepairError, match="needs a reason"):
            desk.cancel(session, order, people["li"], NOW, " ")
        desk.cancel(session, order, people["li"], NOW + timedelta(days=1, hours=1), "duplicate of another order")
        await session.commit()
        events = (await session.execute(select(RepairEvent).where(RepairEvent.order_id == order.id)
                                        .order_by(RepairEvent.id))).scalars().all()  # fmt: skip
    assert [(e.kind, e.status) for e in events] == [
        ("created", "open"), ("assigned", "assigned"), ("started", "in_progress"), ("note", "in_progress"),
        ("resolved", "resolved"), ("rated", "resolved"), ("reopened", "assigned"), ("cancelled", "cancelled"),
    ]  # fmt: skip
    assert events[0].actor == "alice" and events[1].actor == "houqin" and events[-1].note.startswith("duplicate")


async def late_and_resolved(database: Database, inventory: Inventory) -> tuple[RepairDesk, RepairOrder, RepairOrder]:
    """A desk closing after 3 days, an urgent order (due within hours) and an order resolved at ``NOW``."""
    await workers(database, inventory)
    desk = RepairDesk(inventory, RepairSettings(close_after_days=3), TZ)
    async with database.session() as session:
        late = await desk.open(session, NewOrder("late", "electrical", Priority.URGENT), NOW)
        done = await desk.open(session, NewOrder("done", "electrical"), NOW)
        desk.resolve(session, done, None, NOW)
        await session.commit()
    return desk, late, done


async def test_overdue_orders_escalate_once_and_resolved_ones_close(
    database: Database, demo_inventory: Inventory
) -> None:
    desk, late, done = await late_and_resolved(database, demo_inventory)
    async with database.session() as session:
        overdue, closed = await desk.housekeeping(session, NOW + timedelta(days=4))
        await session.commit()
        assert [o.id for o in overdue] == [late.id] and [o.id for o in closed] == [done.id]
        again, _ = await desk.housekeeping(session, NOW + timedelta(days=5))
        assert again == [] and closed[0].status == OrderStatus.CLOSED


async def test_two_processes_keeping_house_at_once_escalate_and_close_once(
    database: Database, demo_inventory: Inventory
) -> None:
    desk, late, done = await late_and_resolved(database, demo_inventory)
    later = NOW + timedelta(days=4)
    async with database.session() as first:
        overdue, closed = await desk.housekeeping(first, later)
        assert len(overdue) == len(closed) == 1
        if database.url.get_backend_name() == "postgresql":  # SQLite: one writer at a time; the second would wait
            async with database.session() as second:  # the first pass holds its orders: nothing twice
                assert await desk.housekeeping(second, later) == ([], [])
                await second.commit()
        await first.commit()
    async with database.session() as session:
        kinds = (await session.execute(select(RepairEvent.kind).where(RepairEvent.order_id.in_([late.id, done.id]))
                                       )).scalars().all()  # fmt: skip
        assert kinds.count("escalated") == 1 and kinds.count("closed") == 1


SPEC = FaultSpec(rule_id="night-water-flow", device="d1-water", severity="critical", category="plumbing",
                 priority=Priority.URGENT, title="dorm-1: water flowing at night", building="dorm-1",
                 auto_resolve=True)  # fmt: skip


async def test_a_fault_opens_one_order_and_a_returning_fault_reopens_it(
    database: Database, demo_inventory: Inventory
) -> None:
    await workers(database, demo_inventory)
    desk = RepairDesk(demo_inventory, RepairSettings(), TZ)
    book = FaultBook(database, desk)
    returns = timedelta(hours=24)
    fault = await book.pending(SPEC, NOW, 3.2)
    assert (await book.pending(SPEC, NOW, 3.2)).id == fault.id  # already open: the same fault
    change = await book.activate(fault.id, SPEC, NOW + timedelta(minutes=30), 3.4, returns)
    assert change is not None and change.change == "opened"
    assert await book.activate(fault.id, SPEC, NOW, 3.4, returns) is None  # only once
    cleared = await book.clear(fault.id, NOW + timedelta(hours=1), auto_resolve=True)
    assert cleared is not None and cleared.change == "resolved"  # not started: resolved by houqin
    second = await book.pending(SPEC, NOW + timedelta(hours=3), 2.0)
    back = await book.activate(second.id, SPEC, NOW + timedelta(hours=4), 2.0, returns)
    assert back is not None and back.change == "reopened" and back.order.id == change.order.id
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(RepairOrder))).scalar_one() == 1
        order = await session.get(RepairOrder, change.order.id)
        assert order is not None and order.status == OrderStatus.ASSIGNED


async def test_two_processes_racing_on_one_fault_open_one_order(database: Database, demo_inventory: Inventory) -> None:
    await workers(database, demo_inventory)
    books = [FaultBook(database, RepairDesk(demo_inventory, RepairSettings(), TZ)) for _ in range(2)]
    returns = timedelta(hours=24)
    pendings = await asyncio.gather(*(book.pending(SPEC, NOW, 1.0) for book in books))
    assert pendings[0].id == pendings[1].id
    changes = await asyncio.gather(*(book.activate(pendings[0].id, SPEC, NOW, 1.0, returns) for book in books))
    assert sum(change is not None for change in changes) == 1
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(RepairOrder))).scalar_one() == 1
        assert (await session.execute(select(func.count()).select_from(Fault))).scalar_one() == 1
