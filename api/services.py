"""Everything the API's routes use, handed to ``create_app`` already built (by the assembly): one typed
object instead of loose attributes on ``app.state``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from houqin.billing.desk import PaymentDesk
from houqin.billing.policy import PowerPolicy
from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.readiness import Readiness
from houqin.repairs.faults import OrderChange
from houqin.repairs.orders import RepairDesk
from houqin.schedules.book import ScheduleBook
from houqin.schedules.commander import ZoneCommander
from houqin.settings import Settings
from houqin.simulation import FaultInjector
from houqin.store import Database
from houqin.telemetry import TelemetryStore

OrderListener = Callable[[OrderChange], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ApiServices:
    """The parts of houqin the routes reach; their lifetimes belong to whoever built them."""

    settings: Settings
    inventory: Inventory
    database: Database
    readiness: Readiness
    telemetry: TelemetryStore
    commands: CommandQueue
    repairs: RepairDesk
    schedules: ScheduleBook
    zone_commander: ZoneCommander
    power_policy: PowerPolicy
    payments: PaymentDesk
    on_order_change: OrderListener | None = None
    simulator: FaultInjector | None = None
