"""houqin's object graph: every part built once, in one place, and wired to the others.

The parts every role shares (the SQL store, the telemetry store, the command queue, the repair desk and
fault book, the notifier, the schedule book, the power policy, the payment desk) are built first; each
role then adds its components around them. ``houqin run``, ``houqin demo``, the API alone and the tests'
campuses all come through :func:`assemble`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from api.app import create_app
from api.server import ApiServer
from api.services import ApiServices
from assembly.collection import start_collection
from assembly.peers import PeerBeat, fingerprints, register
from assembly.roles import ALL_ROLES, ProcessRole
from assembly.sqlite_lock import sole_process
from assembly.stores import open_database, readiness_checks, sqlite_file, telemetry_store
from collectors.simulators.campus import SimulatedCampus
from houqin.billing.alarms import RoomAlarms
from houqin.billing.appliances import ApplianceGuard
from houqin.billing.curfew import Curfew
from houqin.billing.desk import PaymentDesk
from houqin.billing.ledger import ensure_wallets
from houqin.billing.metering import RoomBilling
from houqin.billing.overload import OverloadGuard
from houqin.billing.policy import PowerPolicy
from houqin.billing.providers.enabled import enabled_providers
from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.inventory.timezone import with_site_timezone
from houqin.readiness import Readiness
from houqin.readings import ReadingSink
from houqin.repairs.clock import RepairClock
from houqin.repairs.command_faults import CommandFaults
from houqin.repairs.faults import FaultBook
from houqin.repairs.notifier import Notifier
from houqin.repairs.orders import RepairDesk
from houqin.schedules.book import ScheduleBook, load_schedule_file
from houqin.schedules.calendar import load_calendar_file
from houqin.schedules.commander import ZoneCommander
from houqin.schedules.scheduler import Scheduler
from houqin.settings import Settings
from houqin.store import Database
from houqin.supervisor import Component, Service, supervise
from houqin.telemetry import TelemetryStore
from rules.engine import RulesEngine
from rules.loader import load_rules, rule_files
from rules.model import Rule

log = logging.getLogger("houqin")


@dataclass(frozen=True)
class Tuning:
    """Timings a test campus shortens; a site runs on the defaults."""

    rules_tick_s: float = 1.0
    command_backoff_s: float = 2.0


@dataclass
class Houqin:
    """One process's houqin: the shared parts, and the components its roles run."""

    settings: Settings
    inventory: Inventory
    roles: frozenset[ProcessRole]
    database: Database
    telemetry: TelemetryStore
    readiness: Readiness
    notifier: Notifier
    repairs: RepairDesk
    faults: FaultBook
    commands: CommandQueue
    schedule_book: ScheduleBook
    zone_commander: ZoneCommander
    power_policy: PowerPolicy
    payments: PaymentDesk
    components: list[Component] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    simulator: SimulatedCampus | None = None
    app: FastAPI | None = None  # the API's application (role api)
    api: ApiServer | None = None  # the API listening on its socket (role api, when it listens)
    rules_engine: RulesEngine | None = None
    billing: RoomBilling | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run every component until ``stop`` is set or one of them ends (see ``supervise``)."""
        await supervise(self.components, stop)


@contextlib.asynccontextmanager
async def assemble(
    settings: Settings,
    inventory: Inventory,
    *,
    roles: Collection[ProcessRole] = ALL_ROLES,
    rules: Sequence[Rule] | None = None,
    simulate: bool = False,
    listen: bool = True,
    database: Database | None = None,
    telemetry: TelemetryStore | None = None,
    tuning: Tuning = Tuning(),
) -> AsyncIterator[Houqin]:
    """Build houqin for ``roles`` and yield it, ready to run; on leaving, stop what was started and close
    what was opened.

    A ``database`` or ``telemetry`` store handed in is the caller's: it is used as it is and neither run
    nor closed here. ``rules`` default to the shipped ones and the settings' rule files. ``listen=False``
    builds the API's application without binding its socket (for an in-process client).
    """
    role_set = frozenset(roles)
    owned_database = database is None
    settings = with_site_timezone(settings, inventory)
    with contextlib.ExitStack() as held:
        if owned_database and settings.effective_database_url.startswith("sqlite"):
            held.enter_context(sole_process(sqlite_file(settings.effective_database_url)))
        async with _assembled(settings, inventory, role_set, rules, simulate, listen, database, telemetry,
                              tuning) as houqin:  # fmt: skip
            yield houqin


@contextlib.asynccontextmanager
async def _assembled(
    settings: Settings, inventory: Inventory, role_set: frozenset[ProcessRole], rules: Sequence[Rule] | None,
    simulate: bool, listen: bool, database: Database | None, telemetry: TelemetryStore | None, tuning: Tuning,
) -> AsyncIterator[Houqin]:  # fmt: skip
    owned_database = database is None
    database = database or await open_database(settings)
    beat = None
    if owned_database and not database.is_sqlite:  # peers on one PostgreSQL: same clock, same files
        try:
            files = fingerprints(Path(inventory.source), rule_files(settings.rule_files))
            beat = PeerBeat(database, await register(database, files, role_set, settings.max_clock_skew_s))
        except BaseException:
            await database.close()
            raise
    owned_telemetry = telemetry is None
    store = telemetry or telemetry_store(settings)
    # The store stops after everything that feeds it, so what the pipeline drains at the end is kept.
    store_stop = asyncio.Event()
    store_task = asyncio.create_task(store.run(store_stop), name=store.name) if owned_telemetry else None
    services: list[Service] = []
    try:
        houqin = _shared_parts(settings, inventory, role_set, database, store, tuning)
        houqin.services = services
        if beat is not None:
            houqin.components.append(beat)
        await ensure_wallets(database, sorted(inventory.rooms))
        await _add_roles(houqin, rules, simulate, listen, tuning, beat.process_id if beat is not None else None)
        yield houqin
    finally:
        store_stop.set()
        if store_task is not None:
            await store_task
        for service in reversed(services):
            await service.stop()
        if owned_database:
            await database.close()


def _shared_parts(
    settings: Settings,
    inventory: Inventory,
    roles: frozenset[ProcessRole],
    database: Database,
    telemetry: TelemetryStore,
    tuning: Tuning,
) -> Houqin:
    repairs = RepairDesk(inventory, settings.repairs, settings.tz)
    faults = FaultBook(database, repairs)
    notifier = Notifier(settings.notify, database)
    command_faults = CommandFaults(faults, inventory, notifier.notify)
    commands = CommandQueue(database, inventory, backoff=tuning.command_backoff_s, on_failed=command_faults.failed,
                            on_confirmed=command_faults.confirmed)  # fmt: skip
    policy = PowerPolicy(inventory, commands, settings.billing, settings.tz, database)
    return Houqin(
        settings=settings,
        inventory=inventory,
        roles=roles,
        database=database,
        telemetry=telemetry,
        readiness=readiness_checks(settings, database),
        notifier=notifier,
        repairs=repairs,
        faults=faults,
        commands=commands,
        schedule_book=ScheduleBook(database, inventory, settings.tz),
        zone_commander=ZoneCommander(database, inventory, commands, Curfew(policy)),
        power_policy=policy,
        payments=PaymentDesk(database, policy, enabled_providers(settings), counter=settings.payments.campus_card),
        # Whatever role runs, order changes (a report, a fault, a failed command) are told to the teams, and
        # room alarms to the dorm system (each message claimed in the database: one process sends it).
        components=[notifier, RoomAlarms(settings.notify, database, settings.tz)],
    )


async def _add_roles(
    houqin: Houqin, rules: Sequence[Rule] | None, simulate: bool, listen: bool, tuning: Tuning,
    process_id: str | None = None,
) -> None:  # fmt: skip
    settings, inventory, roles = houqin.settings, houqin.inventory, houqin.roles
    sinks: list[ReadingSink] = []
    if ProcessRole.RULES in roles:
        if rules is None:
            rules = load_rules(rule_files(settings.rule_files), inventory)
        engine = houqin.rules_engine = RulesEngine(
            rules, inventory, houqin.faults, settings.repairs, settings.tz, on_order_change=houqin.notifier.notify,
            tick=tuning.rules_tick_s, telemetry=houqin.telemetry, commands=houqin.commands,
            shared=not houqin.database.is_sqlite,
        )  # fmt: skip
        sinks.append(engine)
        houqin.components += [engine, RepairClock(houqin.database, houqin.repairs, houqin.notifier.notify)]
    if ProcessRole.BILLING in roles:
        billing = houqin.billing = RoomBilling(
            houqin.database, inventory, settings.tz, settings.billing.max_room_kw, houqin.power_policy,
            faults=houqin.faults, on_order_change=houqin.notifier.notify,
        )  # fmt: skip
        sinks += [billing, OverloadGuard(inventory, houqin.power_policy, settings.billing),
                  ApplianceGuard(inventory, houqin.power_policy)]  # fmt: skip
        houqin.components.append(houqin.power_policy)  # its sweep: deferred cuts, the end of trips
    if ProcessRole.COLLECT in roles:
        # Processes registered on PostgreSQL share the gateways by leases: each bus is polled by one of them.
        leases = (houqin.database, process_id) if process_id is not None else None
        collection = await start_collection(
            settings, inventory, [houqin.telemetry, *sinks], houqin.commands, simulate=simulate, leases=leases
        )
        houqin.services += collection.services
        houqin.components += collection.components
        houqin.simulator = collection.simulator
    if ProcessRole.SCHEDULER in roles:
        await _seed_schedules(settings, houqin.schedule_book)
        houqin.components.append(Scheduler(houqin.schedule_book, houqin.zone_commander, inventory, settings.schedules))
    if ProcessRole.API in roles:
        houqin.app = create_app(_api_services(houqin))
        if listen:
            houqin.api = ApiServer(houqin.app, settings.api_host, settings.api_port)
            houqin.components.insert(0, houqin.api)


def _api_services(houqin: Houqin) -> ApiServices:
    return ApiServices(
        settings=houqin.settings,
        inventory=houqin.inventory,
        database=houqin.database,
        readiness=houqin.readiness,
        telemetry=houqin.telemetry,
        commands=houqin.commands,
        repairs=houqin.repairs,
        schedules=houqin.schedule_book,
        zone_commander=houqin.zone_commander,
        power_policy=houqin.power_policy,
        payments=houqin.payments,
        on_order_change=houqin.notifier.notify,
        simulator=houqin.simulator,
    )


async def _seed_schedules(settings: Settings, book: ScheduleBook) -> None:
    """The calendar and schedule files the settings name, imported at start (by name: edits made through
    the API to other schedules stay)."""
    schedules = settings.schedules
    if schedules.calendar_file is not None:
        await book.import_calendar(load_calendar_file(schedules.calendar_file))
    if schedules.seed_file is not None:
        created, replaced = await book.seed(load_schedule_file(schedules.seed_file), "seed", datetime.now(UTC))
        log.info("schedules from %s: %d created, %d replaced", schedules.seed_file, created, replaced)
