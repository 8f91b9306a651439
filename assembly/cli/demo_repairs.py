"""The repair orders of the demo's past: a few faults of the kinds a campus sees, spread over the history,
opened, assigned by the desk's own rule (the team of the category, its least loaded worker), started and
resolved by that worker; the most recent still in progress. Devices are picked by kind from whatever
inventory the demo runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from houqin.inventory import Inventory
from houqin.repairs.orders import NewOrder, RepairDesk
from houqin.settings import Settings
from houqin.store import Database
from houqin.store.tables import Priority, RepairOrder, User


@dataclass(frozen=True)
class _Past:
    kind: str  # the device kind it is about
    category: str
    title: str
    priority: Priority
    hours_to_fix: float


PAST = (
    _Past("lighting", "lighting", "{building}: 走廊灯不亮 corridor lights out ({device})", Priority.NORMAL, 20),
    _Past("water", "plumbing", "{building}: 夜间用水不停 water running at night ({device})", Priority.HIGH, 5),
    _Past("electricity", "meter", "{building} {room}: 电表无读数 meter not answering ({device})", Priority.NORMAL, 30),
    _Past("broadcast", "broadcast", "{building}: 广播有杂音 crackling loudspeaker ({device})", Priority.LOW, 50),
    _Past("electricity", "electrical", "{building} {room}: 插座松动 loose socket", Priority.NORMAL, 8),
    _Past("lighting", "lighting", "{building}: 教室灯闪烁 flickering classroom lights ({device})", Priority.LOW, 40),
    _Past(
        "water", "water_meter", "{building}: 水表读数跳变 water meter reading jumped ({device})", Priority.NORMAL, 26
    ),
    _Past("electricity", "electrical", "{building} {room}: 空开频繁跳闸 breaker keeps tripping", Priority.HIGH, 3),
)


async def repair_history(database: Database, inventory: Inventory, settings: Settings, first: datetime,
                         last: datetime) -> int:  # fmt: skip
    """Open and work the past orders between ``first`` and ``last``; how many were opened."""
    desk = RepairDesk(inventory, settings.repairs, settings.tz)
    by_kind: dict[str, list[str]] = {}
    for device in sorted(inventory.devices.values(), key=lambda d: d.id):
        by_kind.setdefault(inventory.model_of(device).kind, []).append(device.id)
    step = (last - first) / (len(PAST) + 1)
    opened = 0
    async with database.session() as session:
        for index, past in enumerate(PAST):
            devices = by_kind.get(past.kind)
            if not devices:
                continue
            device = inventory.devices[devices[(index * 7) % len(devices)]]
            at = first + step * (index + 1)
            title = past.title.format(building=device.building, room=device.room or "", device=device.id)
            new = NewOrder(
                title,
                past.category,
                past.priority,
                building=device.building,
                floor=device.floor,
                room=device.room,
                device=device.id,
            )
            order = await desk.open(session, new, at)
            opened += 1
            worker = await session.get(User, order.assignee_id) if order.assignee_id else None
            if worker is None:
                continue  # no worker in that team: it waits for staff, as it would
            started = at + timedelta(hours=min(2.0, past.hours_to_fix / 3))
            desk.start(session, order, worker, started)
            if index < len(PAST) - 1:  # the most recent is still being worked on
                desk.resolve(session, order, worker, at + timedelta(hours=past.hours_to_fix), "修好了 fixed")
        await session.commit()
    return opened


async def has_past_orders(database: Database) -> bool:
    async with database.session() as session:
        return (await session.execute(select(RepairOrder.id).limit(1))).first() is not None
