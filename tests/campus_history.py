"""A month of campus life in the SQL store, written through houqin's own services (not by INSERTs), for the
tests of what reads it back (the Grafana SQL panels): accounts, opening balances, top-ups at the counter,
charges that leave one room low and cut another off, repair orders opened by rules and by hand (one
overdue, some resolved by workers), a zone override, a scheduler pass that reconciles every lighting zone,
and a command that never got through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from houqin.accounts import NewAccount, add_account
from houqin.billing.desk import PaymentDesk
from houqin.billing.ledger import ensure_wallets
from houqin.billing.policy import PowerPolicy
from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.repairs.orders import NewOrder, RepairDesk
from houqin.schedules.book import ScheduleBook
from houqin.schedules.commander import ZoneCommander
from houqin.schedules.scheduler import Scheduler
from houqin.settings import Settings
from houqin.store import Database, upgrade_database
from houqin.store.tables import DeviceCommand, Priority, Role, User
from tests.api_client import PASSWORD


async def record_campus_history(database: Database, inventory: Inventory) -> None:
    settings = Settings()
    await upgrade_database(database)
    now = datetime.now(UTC)
    async with database.session() as session:
        for account in (
            NewAccount("wang", Role.WORKER, PASSWORD, team="electrical", display_name="王师傅"),
            NewAccount("zhou", Role.WORKER, PASSWORD, team="plumbing", display_name="周师傅"),
            NewAccount("zhao", Role.CASHIER, PASSWORD),
        ):
            await add_account(session, account, inventory)
        await session.commit()

    rooms = sorted(inventory.rooms)
    await ensure_wallets(database, rooms)
    commands = CommandQueue(database, inventory, max_attempts=2, backoff=0.01)
    policy = PowerPolicy(inventory, commands, settings.billing, settings.tz, database)
    desk = PaymentDesk(database, policy, {})
    for day, room in enumerate(rooms):
        await desk.pay_at_counter("zhao", room, 5000, f"opening-{room}", now - timedelta(days=day % 20, hours=1))
    async with database.session() as session:
        await policy.post(session, rooms[0], "charge", -5000, now, key="charge-1", cause="meter window")
        await policy.post(session, rooms[1], "charge", -4800, now, key="charge-2", cause="meter window")
        await session.commit()

    repairs = RepairDesk(inventory, settings.repairs, settings.tz)
    async with database.session() as session:
        wang = (await session.execute(select(User).where(User.username == "wang"))).scalar_one()
        zhou = (await session.execute(select(User).where(User.username == "zhou"))).scalar_one()
        leak = await repairs.open(session, NewOrder("dorm-1: water flowing at night (2.4 L/min)", "plumbing",
                                                    Priority.URGENT, building="dorm-1", device="dorm1-water",
                                                    rule_id="night-water-flow"), now - timedelta(days=3))  # fmt: skip
        repairs.start(session, leak, zhou, now - timedelta(days=3) + timedelta(hours=1))
        repairs.resolve(session, leak, zhou, now - timedelta(days=2), "valve replaced")
        late = await repairs.open(session, NewOrder("dorm-2: corridor light flickers", "lighting", building="dorm-2",
                                                    floor=2), now - timedelta(days=5))  # fmt: skip
        await repairs.assign(session, late, wang, None, now - timedelta(days=5))
        sag = await repairs.open(session, NewOrder("dorm-1 D1-105: low voltage (190 V)", "electrical", Priority.HIGH,
                                                   building="dorm-1", room="D1-105", device="d1-105-meter",
                                                   rule_id="low-voltage"), now - timedelta(hours=6))  # fmt: skip
        repairs.start(session, sag, wang, now - timedelta(hours=5))
        repairs.resolve(session, sag, wang, now - timedelta(hours=2), "loose neutral tightened")
        await repairs.open(session, NewOrder("teaching-a: projector", "multimedia", building="teaching-a"), now)
        await session.commit()

    book = ScheduleBook(database, inventory, settings.tz)
    scheduler = Scheduler(book, ZoneCommander(database, inventory, commands), inventory, settings.schedules)
    await scheduler.tick()  # holds the lease and reconciles every lighting zone: firings and commands
    await scheduler.release()
    await book.start_override(book.zone("library"), "on", None, now + timedelta(hours=3), "li", "exam week", now)

    async with database.session() as session:
        queued = select(DeviceCommand).where(DeviceCommand.state == "queued").order_by(DeviceCommand.id).limit(1)
        never_answers = (await session.execute(queued)).scalar_one()
    for attempt in range(1, 10):  # the dispatcher's part: claim, try, fail, until the queue gives up
        at = now + timedelta(seconds=attempt)
        claimed = [row.id for row in await commands.claim([never_answers.device], at, limit=100)]
        assert never_answers.id in claimed
        if await commands.failed_attempt(never_answers.id, at, f"no answer (attempt {attempt})") == "failed":
            break
