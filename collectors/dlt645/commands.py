"""Relay commands to DL/T 645 meters (0x1C): the queued commands of the 645 meters this process polls,
sent through the same links, each confirmed by reading status word 3 back (a trip must leave the relay
open, a close closed). A meter that refuses the password refuses it again: the command fails at once
(and the failure is a fault), it is not retried until its deadline."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from collectors.command_dispatcher import CommandDispatcher, commanded_behind
from collectors.dlt645.frame import MeterError
from collectors.dlt645.link import Dlt645Link
from collectors.dlt645.requests import RelayCredentials
from collectors.link_errors import DeviceRefused, LinkError
from houqin.commands import CommandQueue, Sendable
from houqin.dlt645_items import ITEMS_2007, RELAY_OPEN_BIT, STATUS_WORD_3, RelayAction
from houqin.inventory import Inventory
from houqin.settings import Dlt645Settings

log = logging.getLogger(__name__)

# How often, and how far apart, status word 3 is read until the relay shows the state asked for: a meter
# answers the command at once and moves its relay a moment later.
CONFIRM_READS = 4
CONFIRM_GAP_S = 0.5


def credentials_of(settings: Dlt645Settings) -> RelayCredentials | None:
    if settings.password is None:
        return None
    return RelayCredentials(settings.password_level, settings.password.get_secret_value(), settings.operator)


class Dlt645CommandDispatcher(CommandDispatcher):
    """A component of ``houqin run``: one for all the DL/T 645 links of the process."""

    def __init__(
        self, queue: CommandQueue, links: dict[str, Dlt645Link], inventory: Inventory, settings: Dlt645Settings,
        timezone: ZoneInfo, every: float = 0.5, confirm_gap: float = CONFIRM_GAP_S,
    ) -> None:  # fmt: skip
        super().__init__(queue, inventory, commanded_behind(inventory, links), every)
        queue.send_directly(self)
        self.links = links
        self.credentials = credentials_of(settings)
        self.valid_for = timedelta(minutes=settings.command_minutes)
        self.timezone = timezone
        self.confirm_gap = confirm_gap

    @property
    def name(self) -> str:
        return "commands:dlt645"

    async def send(self, command: Sendable) -> None:
        device = self.inventory.devices[command.device]
        spec = self.inventory.model_of(device).commands[command.command]
        action = RelayAction[str(spec.actions[command.action]).upper()]
        if self.credentials is None:
            await self.failed(command.id, command.device, "no meter password: set HOUQIN_DLT645__PASSWORD", True)
            return
        link, address = self.links[device.gateway or ""], device.address or ""
        # The meter voids a command it has not carried out by then (its own clock: the campus's time).
        expires = datetime.now(self.timezone) + self.valid_for
        try:
            await link.relay(address, action, self.credentials, expires.replace(tzinfo=None))
        except DeviceRefused as exc:
            await self.failed(command.id, command.device, str(exc), for_good=bool(exc.code & MeterError.PASSWORD))
            return
        except LinkError as exc:
            await self.failed(command.id, command.device, str(exc))
            return
        if action.closes is None:  # accepted, and nothing a read can show (keep power, close allowed)
            self.confirm_soon(command)
            return
        closed: bool | None = None
        for _ in range(CONFIRM_READS):
            await asyncio.sleep(self.confirm_gap)
            try:
                word = await link.read(address, ITEMS_2007[STATUS_WORD_3])
            except LinkError:
                continue
            closed = not int(word) & RELAY_OPEN_BIT
            if closed == action.closes:
                self.confirm_soon(command)
                return
        seen = "no status word" if closed is None else f"relay {'closed' if closed else 'open'}"
        await self.failed(command.id, command.device, f"{action.name.lower()} accepted, but status word 3 says {seen}")
