"""Sends the queued commands of MQTT devices through the MQTT link, and confirms each by the device's own
state message: a pipeline sink that watches the readings of the devices it is waiting on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiomqtt
import orjson

from collectors.command_dispatcher import CLAIM_BATCH, COMMANDS, CommandDispatcher
from collectors.mqtt_link import MqttLink
from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.inventory.model import Command
from houqin.readings import FieldValue, Reading
from houqin.store.tables import DeviceCommand

log = logging.getLogger(__name__)

_ANY = object()  # the next state message confirms


@dataclass
class _Awaited:
    command_id: int
    state_field: str | None
    expected: FieldValue | object
    deadline: datetime
    echo_field: str | None = None
    correlation: str = ""

    def confirmed_by(self, fields: Mapping[str, FieldValue]) -> bool:
        # A device that echoes command ids confirms exactly the command it applied, nothing older.
        if self.echo_field is not None:
            return fields.get(self.echo_field) == self.correlation
        observed = fields.get(self.state_field) if self.state_field else None
        return self.expected is _ANY or observed == self.expected


def expected_state(command: Command, action: str) -> FieldValue | object:
    """The state-field value that confirms ``action``, or ``_ANY`` when the next state message does."""
    if action in command.states:
        return command.states[action]
    payload = command.actions[action]
    if command.state_field is not None and isinstance(payload, str):
        with contextlib.suppress(orjson.JSONDecodeError):
            document = orjson.loads(payload)
            if isinstance(document, dict) and command.state_field in document:
                value: FieldValue = document[command.state_field]
                return value
    return _ANY


class MqttCommandDispatcher(CommandDispatcher):
    """A component and a pipeline sink of ``houqin run``."""

    def __init__(
        self, queue: CommandQueue, link: MqttLink, inventory: Inventory, confirm_within: float = 10.0,
        every: float = 0.5,
    ) -> None:  # fmt: skip
        devices = {device.id for device in link.devices.values() if inventory.model_of(device).commands}
        super().__init__(queue, devices, every)
        self.link = link
        self.inventory = inventory
        self.confirm_within = timedelta(seconds=confirm_within)
        self._awaited: dict[str, _Awaited] = {}  # device -> the command its next state should confirm
        self._publishing: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:  # publishes under way finish (or fail and are recorded) before the link closes
            await asyncio.gather(*self._publishing, return_exceptions=True)

    @property
    def name(self) -> str:
        return "commands:mqtt"

    async def consume(self, readings: Sequence[Reading]) -> None:
        confirmed: list[int] = []
        for reading in readings:
            awaited = self._awaited.get(reading.device)
            if awaited is not None and awaited.confirmed_by(reading.fields):
                del self._awaited[reading.device]
                confirmed.append(awaited.command_id)
        if confirmed:
            # One write for every confirmation in the batch: hundreds of lights answer the same second.
            await self.queue.confirm_many(confirmed, self.queue.clock())
            COMMANDS.labels("confirmed").inc(len(confirmed))

    async def dispatch_once(self) -> None:
        now = self.queue.clock()
        for device, awaited in list(self._awaited.items()):
            # A state message may have confirmed it while this loop awaited: pop, and only if it is still this one.
            if awaited.deadline <= now and self._awaited.get(device) is awaited:
                del self._awaited[device]
                await self.failed(awaited.command_id, device, f"no state confirming it within {self.confirm_within}")
        if not self.link.connected.is_set():
            return
        # One command in flight per device: its confirmation must not be taken for another's.
        while True:
            free = self.devices - self._awaited.keys()
            claimed = await self.queue.claim(free, now, limit=CLAIM_BATCH)
            for row in claimed:
                # Published side by side, not waited for here: each QoS 1 publish waits for the broker's
                # acknowledgement, and meanwhile the next batch is claimed (the scheduler commits hundreds of
                # zones in batches). The device is awaited from now on, so it is not claimed again.
                publishing = asyncio.create_task(self._publish(row, self._expect(row)))
                self._publishing.add(publishing)
                publishing.add_done_callback(self._publishing.discard)
            if len(claimed) < CLAIM_BATCH:
                return

    def _expect(self, row: DeviceCommand) -> _Awaited:
        """What will confirm ``row``: noted before it is published, as the device's answer can arrive before
        the broker's acknowledgement."""
        device = self.inventory.devices[row.device]
        command = self.inventory.model_of(device).commands[row.command]
        awaited = _Awaited(
            row.id, command.state_field, expected_state(command, row.action), self.queue.clock() + self.confirm_within,
            echo_field=command.echo_field, correlation=row.correlation_id,
        )  # fmt: skip
        self._awaited[row.device] = awaited
        return awaited

    async def _publish(self, row: DeviceCommand, awaited: _Awaited) -> None:
        device = self.inventory.devices[row.device]
        try:
            await self.link.send(device, row.command, row.action, row.arguments, row.correlation_id)
        except aiomqtt.MqttError as exc:
            if self._awaited.get(row.device) is awaited:
                del self._awaited[row.device]
            await self.failed(row.id, row.device, f"not published: {exc}")
