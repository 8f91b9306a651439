"""Sends the queued commands of MQTT devices through the MQTT link, and confirms each by the device's own
state message: a pipeline sink that watches the readings of the devices it is waiting on.

It is also the queue's direct sender for its devices: a command queued in this process for a device with
nothing in flight is published as soon as its transaction commits, without a claim (the campus's 08:00
bell is hundreds of zones in one second)."""

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
from houqin.commands import CommandQueue, Outgoing, Sendable
from houqin.inventory import Inventory
from houqin.inventory.model import Command
from houqin.readings import FieldValue, Reading

log = logging.getLogger(__name__)

_ANY = object()  # the next state message confirms
# Confirmations are written once no command has gone out for this long (at most CONFIRM_AT_MOST later):
# while the campus's bells are going out, sending comes first; a command has seconds to be confirmed.
CONFIRM_QUIET = 0.05
CONFIRM_AT_MOST = 1.0
# With a shared subscription: how often the commands this process waits on are checked for confirmations
# that other processes wrote (the state message went to them).
ELSEWHERE = timedelta(seconds=0.5)


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
        super().__init__(queue, inventory, devices, every)
        self.link = link
        self.confirm_within = timedelta(seconds=confirm_within)
        self._awaited: dict[str, _Awaited] = {}  # device -> the command its next state should confirm
        self._reserved: set[str] = set()  # devices whose command is being written, to be delivered here
        self._publishing: set[asyncio.Task[None]] = set()
        self._last_start = 0.0  # the event loop's time when the last command went out
        self._confirmed: list[int] = []  # confirmed by their devices, not yet written
        self._confirming: asyncio.Task[None] | None = None
        self._flush = asyncio.Event()  # set at stop: write what is gathered without waiting for a pause
        self._running = False
        self._checked_elsewhere: datetime | None = None
        queue.send_directly(self)

    async def run(self, stop: asyncio.Event) -> None:
        self._running = True
        try:
            await super().run(stop)
        finally:  # publishes under way finish (or fail and are recorded) before the link closes
            self._running = False
            await asyncio.gather(*self._publishing, return_exceptions=True)
            # Confirmations gathered are written now, not cancelled: a write cut off mid-transaction can
            # leave the database locked for the next writer.
            self._flush.set()
            if self._confirming is not None:
                await self._confirming

    # --- the queue's direct sender ---------------------------------------------------------------------

    def reserve(self, device: str) -> bool:
        if (
            not self._running
            or not self.link.connected.is_set()
            or device not in self.devices
            or device in self._awaited
            or device in self._reserved
        ):
            return False
        self._reserved.add(device)
        return True

    def release(self, device: str) -> None:
        self._reserved.discard(device)

    def deliver(self, command: Outgoing) -> None:
        self._reserved.discard(command.device)
        self._start(command)

    @property
    def name(self) -> str:
        return "commands:mqtt"

    async def consume(self, readings: Sequence[Reading]) -> None:
        confirmed: list[int] = []
        elsewhere: dict[str, Reading] = {}  # states that confirm nothing this process waits on
        for reading in readings:
            awaited = self._awaited.get(reading.device)
            if awaited is not None and awaited.confirmed_by(reading.fields):
                del self._awaited[reading.device]
                confirmed.append(awaited.command_id)
            elif reading.device in self.devices:
                # Not this process's command (or none): with a shared subscription, it may confirm one another
                # process sent — also while this one still waits on an older command it does not yet know
                # was confirmed elsewhere.
                elsewhere[reading.device] = reading
        if elsewhere and self.link.shared_group is not None:
            # With a shared subscription, the state that confirms another process's command may come here.
            confirmed += await self._confirm_for_others(elsewhere)
        if confirmed:
            self._confirmed += confirmed
            if self._confirming is None:
                self._confirming = asyncio.create_task(self._confirm_when_quiet())

    async def _confirm_for_others(self, states: Mapping[str, Reading]) -> list[int]:
        """The commands sent by other processes that these state messages confirm."""
        try:
            rows = await self.queue.in_flight(list(states))
        except Exception:  # the database away: their senders time out and retry, as before
            log.warning("cannot look up commands in flight elsewhere", exc_info=True)
            return []
        confirmed = []
        for row in rows:
            reading = states[row.device]
            if row.sent_at is not None and reading.ts < row.sent_at:
                continue  # a state from before the command was sent says nothing of it
            if self._awaiting(row).confirmed_by(reading.fields):
                confirmed.append(row.id)
        return confirmed

    async def _confirm_when_quiet(self) -> None:
        """Write the confirmations gathered, in one transaction, once no command has gone out for
        ``CONFIRM_QUIET`` (hundreds of lights answer the same second; a failed write is tried again)."""
        loop = asyncio.get_running_loop()
        first = loop.time()
        while self._confirmed:
            now = loop.time()
            wait = min(CONFIRM_QUIET - (now - self._last_start), CONFIRM_AT_MOST - (now - first))
            if wait > 0 and not self._flush.is_set():
                await self._pause(wait)
                continue
            try:
                await self._write_confirmed()
            except Exception:
                if self._flush.is_set():  # stopping: the commands stay sent, and are sent again at the next start
                    log.exception("%d confirmations not written at stop", len(self._confirmed))
                    break
                log.exception("confirmations not written; trying again in %.0f s", CONFIRM_AT_MOST)
                await self._pause(CONFIRM_AT_MOST)
            first = loop.time()
        self._confirming = None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flush.wait(), seconds)

    async def _write_confirmed(self) -> None:
        ids, self._confirmed = self._confirmed, []
        try:
            await self.queue.confirm_many(ids, self.queue.clock())
        except Exception:
            self._confirmed[:0] = ids
            raise
        COMMANDS.labels("confirmed").inc(len(ids))

    async def dispatch_once(self) -> None:
        now = self.queue.clock()
        if self.link.shared_group is not None and self._awaited:
            await self._drop_confirmed_elsewhere(now)
        for device, awaited in list(self._awaited.items()):
            # A state message may have confirmed it while this loop awaited: pop, and only if it is still this one.
            if awaited.deadline <= now and self._awaited.get(device) is awaited:
                del self._awaited[device]
                await self.failed(awaited.command_id, device, f"no state confirming it within {self.confirm_within}")
        if not self.link.connected.is_set():
            return
        # One command in flight per device: its confirmation must not be taken for another's.
        while True:
            free = self.devices - self._awaited.keys() - self._reserved
            claimed = await self.queue.claim(free, now, limit=CLAIM_BATCH)
            for row in claimed:
                self._start(row)
            if len(claimed) < CLAIM_BATCH:
                return

    async def _drop_confirmed_elsewhere(self, now: datetime) -> None:
        """Stop waiting for commands another process confirmed (its share of the devices' messages held the
        state), so the device is free for the next one. Asked of the database at most every ``ELSEWHERE``."""
        if self._checked_elsewhere is not None and now - self._checked_elsewhere < ELSEWHERE:
            return
        self._checked_elsewhere = now
        waiting = {awaited.command_id: device for device, awaited in self._awaited.items()}
        try:
            still = await self.queue.still_sent(list(waiting))
        except Exception:
            return  # the database away: the deadline decides, as before
        for command_id, device in waiting.items():
            awaited = self._awaited.get(device)
            if command_id not in still and awaited is not None and awaited.command_id == command_id:
                del self._awaited[device]

    def _start(self, row: Sendable) -> None:
        """Publish ``row`` (marked sent) in a task of its own: each QoS 1 publish waits for the broker's
        acknowledgement, and meanwhile more are claimed or delivered. The device is awaited from now on, so it
        is not claimed again."""
        self._last_start = asyncio.get_running_loop().time()
        publishing = asyncio.create_task(self._publish(row, self._expect(row)))
        self._publishing.add(publishing)
        publishing.add_done_callback(self._publishing.discard)

    def _expect(self, row: Sendable) -> _Awaited:
        """What will confirm ``row``: noted before it is published, as the device's answer can arrive before
        the broker's acknowledgement."""
        awaited = self._awaiting(row)
        self._awaited[row.device] = awaited
        return awaited

    def _awaiting(self, row: Sendable) -> _Awaited:
        device = self.inventory.devices[row.device]
        command = self.inventory.model_of(device).commands[row.command]
        return _Awaited(
            row.id, command.state_field, expected_state(command, row.action), self.queue.clock() + self.confirm_within,
            echo_field=command.echo_field, correlation=row.correlation_id,
        )  # fmt: skip

    async def _publish(self, row: Sendable, awaited: _Awaited) -> None:
        device = self.inventory.devices[row.device]
        try:
            await self.link.send(device, row.command, row.action, row.arguments, row.correlation_id)
        except aiomqtt.MqttError as exc:
            if self._awaited.get(row.device) is awaited:
                del self._awaited[row.device]
            await self.failed(row.id, row.device, f"not published: {exc}")
