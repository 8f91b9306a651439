"""Valve commands to CJ/T 188 meters (write A017): the queued commands of the meters this process polls,
sent through the same links, each confirmed by the valve state read back (the write's own answer says
what the valve was doing then; a motorised valve takes seconds to move, so the current data is read
until it shows the state asked for). A valve that reports itself abnormal fails the command: that is a
fault for a plumber, not something to retry into."""

from __future__ import annotations

import asyncio
import logging

from collectors.cjt188.link import Cjt188Link
from collectors.command_dispatcher import CommandDispatcher, commanded_behind
from collectors.link_errors import LinkError
from houqin.cjt188_meters import BadReadingError, Status, ValveAction
from houqin.commands import CommandQueue, Sendable
from houqin.inventory import Inventory

log = logging.getLogger(__name__)

CONFIRM_READS = 6
CONFIRM_GAP_S = 1.0


class Cjt188CommandDispatcher(CommandDispatcher):
    """A component of ``houqin run``: one for all the CJ/T 188 links of the process."""

    def __init__(
        self, queue: CommandQueue, links: dict[str, Cjt188Link], inventory: Inventory, every: float = 0.5,
        confirm_gap: float = CONFIRM_GAP_S,
    ) -> None:  # fmt: skip
        super().__init__(queue, inventory, commanded_behind(inventory, links), every)
        queue.send_directly(self)
        self.links = links
        self.confirm_gap = confirm_gap

    @property
    def name(self) -> str:
        return "commands:cjt188"

    async def send(self, command: Sendable) -> None:
        device = self.inventory.devices[command.device]
        model = self.inventory.model_of(device)
        assert model.cjt188 is not None
        action = ValveAction(str(model.commands[command.command].actions[command.action]))
        link, address = self.links[device.gateway or ""], device.address or ""
        try:
            status = await link.valve(address, model.cjt188, action)
        except LinkError as exc:
            await self.failed(command.id, command.device, str(exc))
            return
        for attempt in range(CONFIRM_READS + 1):
            if status.valve_fault:
                await self.failed(command.id, command.device, f"valve {action}: the meter reports its valve abnormal",
                                  for_good=True)  # fmt: skip
                return
            if status.valve_closed == action.closes:
                self.confirm_soon(command)
                return
            if attempt == CONFIRM_READS:
                break
            await asyncio.sleep(self.confirm_gap)
            try:
                fields = await link.read_current(address, model.cjt188)
            except (LinkError, BadReadingError):
                continue
            status = Status(bool(fields["valve_closed"]), bool(fields["valve_fault"]), bool(fields["battery_low"]))
        seen = "closed" if status.valve_closed else "open"
        await self.failed(command.id, command.device, f"valve {action} accepted, but the meter still reports it {seen}")
