"""A controller that does not carry out its commands is a fault: a command that fails for good (no answer,
a wrong read-back, its deadline passed) raises ``command_failed`` on the device, which opens a repair order
for the team of the device's kind; the next command the device confirms clears it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from houqin.inventory import Inventory
from houqin.repairs.faults import FaultBook, FaultSpec, OrderChange
from houqin.store.tables import DeviceCommand, Priority

log = logging.getLogger(__name__)

COMMAND_RULE = "command_failed"
# The repair category of a controller by its kind: the team that owns it gets the order.
CATEGORY = {"lighting": "lighting", "broadcast": "broadcast", "electricity": "electrical", "water": "plumbing"}


class CommandFaults:
    def __init__(
        self,
        faults: FaultBook,
        inventory: Inventory,
        on_order_change: Callable[[OrderChange], Awaitable[None]] | None = None,
        returns_within: timedelta = timedelta(days=7),
    ) -> None:
        self.faults = faults
        self.inventory = inventory
        self.on_order_change = on_order_change
        self.returns_within = returns_within
        self._open: dict[str, int] | None = None  # device -> its open command fault, loaded once

    async def _open_faults(self) -> dict[str, int]:
        if self._open is None:
            self._open = {f.device: f.id for f in await self.faults.open_faults() if f.rule_id == COMMAND_RULE}
        return self._open

    async def failed(self, command: DeviceCommand) -> None:
        device = self.inventory.devices.get(command.device)
        if device is None:
            return
        kind = self.inventory.model_of(device).kind
        why = command.last_error or "no confirmation"
        spec = FaultSpec(
            rule_id=COMMAND_RULE,
            device=device.id,
            severity="critical" if kind == "broadcast" else "warning",
            category=CATEGORY.get(kind, "electrical"),
            priority=Priority.HIGH if kind in {"broadcast", "electricity"} else Priority.NORMAL,
            title=f"{device.id} did not carry out {command.command} {command.action}: {why}"[:255],
            building=device.building,
            floor=device.floor,
            room=device.room,
        )
        now = datetime.now(UTC)
        fault = await self.faults.pending(spec, now, None)
        (await self._open_faults())[device.id] = fault.id
        change = await self.faults.activate(fault.id, spec, now, None, self.returns_within)
        log.warning("command %d to %s failed for good (%s): fault %d", command.id, device.id, why, fault.id)
        if change is not None and self.on_order_change is not None:
            await self.on_order_change(change)

    async def confirmed(self, command: DeviceCommand) -> None:
        fault_id = (await self._open_faults()).pop(command.device, None)
        if fault_id is not None:
            await self.faults.clear(fault_id, datetime.now(UTC), auto_resolve=False)
