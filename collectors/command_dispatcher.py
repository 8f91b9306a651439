"""Sends the queued commands of the Modbus devices this process polls, through the same links (so a
write waits its turn on the bus like any read), and confirms each by reading the output back."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections import deque
from collections.abc import Collection, Coroutine
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter

from collectors.link_errors import LinkError
from collectors.modbus_link import ModbusLink
from collectors.ownership import GatewayOwnership
from houqin.commands import CommandQueue, Outgoing, Sendable
from houqin.inventory import Inventory
from houqin.ticker import run_every

log = logging.getLogger(__name__)

CLAIM_BATCH = 500
# Longer than any process waits for a command's outcome: a command still ``sent`` after it has no sender left.
STALE = timedelta(seconds=60)
PEER_LIVE = timedelta(seconds=20)  # a registered process heard of within this is alive (assembly.peers)

HANDED_BACK = timedelta(seconds=10)  # longer than any send and its read-back takes
COMMANDS = Counter("houqin_commands_total", "Device commands sent", ["result"])


def commanded_behind(inventory: Inventory, gateways: Collection[str]) -> set[str]:
    """The devices with commands behind ``gateways``."""
    return {
        device.id
        for device in inventory.devices.values()
        if device.gateway in gateways and inventory.model_of(device).commands
    }


class CommandDispatcher:
    """What every dispatcher does: resend what a stop left unfinished, then claim and send due commands
    every ``every`` seconds (``dispatch_once``), recording failed attempts the same way."""

    def __init__(self, queue: CommandQueue, inventory: Inventory, devices: set[str], every: float) -> None:
        self.queue = queue
        self.inventory = inventory
        self.devices = devices
        self.every = every
        self._wake = queue.listen()  # a command queued in this process is sent now, not at the next tick
        self._recording: set[asyncio.Task[object]] = set()
        self._lines: dict[str, deque[Sendable]] = {}  # per link: claimed or handed over, not sent yet
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._lined: collections.Counter[str] = (
            collections.Counter()
        )  # devices with commands in a line (or reserved for one)
        self._running = False

    async def run(self, stop: asyncio.Event) -> None:
        shared = await self.resume()
        self._running = True
        try:
            if shared:
                sweeping = asyncio.create_task(run_every(stop, STALE.total_seconds() / 2, self._sweep, "stale sweep"))
            await run_every(stop, self.every, self.dispatch_once, "command dispatch", wake=self._wake)
            if shared:
                await sweeping
        finally:
            self._running = False
            # Claimed commands not sent yet stay ``sent``: the next start sends them again.
            for sender in self._senders.values():
                sender.cancel()
            await asyncio.gather(*self._senders.values(), return_exceptions=True)
            await self._recorded()

    def follow(self, ownership: GatewayOwnership, gateways: Collection[str]) -> None:
        """Send only for the gateways this process owns (several collecting processes): none until a lease
        is taken; a gateway taken from a process that stopped has its commands left ``sent`` sent again."""
        behind = {gateway: commanded_behind(self.inventory, [gateway]) for gateway in gateways}
        self.devices = set()

        def changed(gateway: str, owned: bool, from_stopped: bool) -> None:
            if gateway not in behind:
                return
            if not owned:
                self.devices -= behind[gateway]
                self._hand_back_line(gateway)
                return
            self.devices |= behind[gateway]
            self._in_background(self._taken_over(behind[gateway], from_stopped))

        ownership.watch(changed)

    def _hand_back_line(self, gateway: str) -> None:
        """The gateway is another process's now: what is lined up for it here and not on the wire yet is
        queued again for the new owner (the command being sent, if any, finishes here)."""
        line = self._lines.get(gateway)
        if not line:
            return
        handed = list(line)
        line.clear()
        for command in handed:
            self.release(command.device)
        self._in_background(self.queue.unclaim([command.id for command in handed], self.queue.clock()))
        log.info("gateway %s handed over: %d lined-up commands left to its new owner", gateway, len(handed))

    async def _taken_over(self, devices: set[str], from_stopped: bool) -> None:
        # From a process that stopped renewing, nothing it sent is awaited; from one that gave the gateway
        # back, what it sent in the last seconds may still be on the wire.
        sent_before = None if from_stopped else self.queue.clock() - HANDED_BACK
        if devices:
            requeued = await self.queue.requeue_unfinished(devices, self.queue.clock(), sent_before)
            if requeued:
                log.info("sending again %d commands the gateway's previous owner left unconfirmed", requeued)
        self._wake.set()

    async def resume(self) -> bool:
        """At a start, send again what was left sent with no sender; True with several processes possible."""
        # Alone on the database (SQLite always), what is left sent is this process's from before its stop,
        # all of it. With live peers on PostgreSQL, one may be waiting on a command it just sent: only a
        # command sent longer ago than anyone waits (STALE) is anybody's to send again — now and from then on.
        shared = not self.queue.database.is_sqlite
        alone = not shared or await self.queue.processes_alive(PEER_LIVE) <= 1
        await self._requeue_stale(None if alone else self.queue.clock() - STALE)
        return shared

    async def _requeue_stale(self, sent_before: datetime | None) -> None:
        requeued = await self.queue.requeue_unfinished(self.devices, self.queue.clock(), sent_before)
        if requeued:
            log.info("sending again %d commands whose outcome nobody knows (their sender stopped)", requeued)

    async def _sweep(self) -> None:
        await self._requeue_stale(self.queue.clock() - STALE)

    async def dispatch_once(self) -> None:
        """Claim what is due and hand each command to its bus's sender. Buses are independent: each sends its
        own in order, side by side with the others, and a long line on one bus (a curfew's relays) holds up
        no other."""
        while True:
            batch = await self.queue.claim(self.devices, self.queue.clock(), limit=CLAIM_BATCH)
            for command in batch:
                self._lined[command.device] += 1
                self._line_up(command)
            if len(batch) < CLAIM_BATCH:
                return

    def _line_up(self, command: Sendable) -> None:
        link = self.inventory.devices[command.device].gateway or ""
        self._lines.setdefault(link, deque()).append(command)
        sender = self._senders.get(link)
        if sender is None or sender.done():
            self._senders[link] = asyncio.create_task(self._send_in_order(link))

    async def _send_in_order(self, link: str) -> None:
        line = self._lines[link]
        while line:
            command = line.popleft()
            try:
                await self.send(command)
            except Exception as exc:
                log.exception("command %d to %s could not be sent", command.id, command.device)
                # Recorded as a failed attempt, so it is tried again after its backoff instead of staying
                # ``sent`` with nobody to send it.
                with contextlib.suppress(Exception):
                    await self.failed(command.id, command.device, f"could not be sent: {exc}")
            finally:
                self.release(command.device)

    # --- taking commands straight from the transaction that queues them (``CommandQueue.send_directly``)

    def reserve(self, device: str) -> bool:
        """Take ``device``'s command at commit, with no claim in between: a curfew's thousand relay commands
        reach their buses at once. Not while the device has one in line: it is claimed after that one."""
        if not self._running or device not in self.devices or device in self._lined:
            return False
        self._lined[device] += 1
        return True

    def release(self, device: str) -> None:
        """``device`` has one command fewer in line (sent, or its transaction did not commit)."""
        self._lined[device] -= 1
        if self._lined[device] <= 0:
            del self._lined[device]

    def deliver(self, command: Outgoing) -> None:
        self._line_up(command)

    def confirm_soon(self, command: Sendable) -> None:
        """Record a confirmation without holding the bus: the next command goes out while it is written (at a
        curfew, a bus's thousand relays would otherwise wait for the store between every two). A stop before
        it is written leaves the command ``sent``, and the next start sends it again: switching a relay to
        where it already is changes nothing."""
        self._in_background(self.confirmed(command))

    def _in_background(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` beside the sending; a stop waits for it (``_recorded``)."""
        task = asyncio.create_task(work)
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def _recorded(self) -> None:
        for outcome in await asyncio.gather(*list(self._recording), return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("a confirmation could not be recorded: %s", outcome)

    async def send(self, command: Sendable) -> None:
        raise NotImplementedError

    async def confirmed(self, command: Sendable) -> None:
        await self.queue.confirm(command.id, self.queue.clock())
        COMMANDS.labels("confirmed").inc()
        log.info("%s %s %s confirmed (command %d)", command.device, command.command, command.action, command.id)

    async def failed(self, command_id: int, device: str, why: str, for_good: bool = False) -> None:
        state = await self.queue.failed_attempt(command_id, self.queue.clock(), why, for_good)
        COMMANDS.labels("retry" if state == "queued" else "failed").inc()
        log.warning("command %d to %s: %s (%s)", command_id, device, why, state)


class ModbusCommandDispatcher(CommandDispatcher):
    """A component of ``houqin run``: one for all the Modbus links of the process."""

    def __init__(
        self, queue: CommandQueue, links: dict[str, ModbusLink], inventory: Inventory, every: float = 0.5
    ) -> None:
        super().__init__(queue, inventory, commanded_behind(inventory, links), every)
        self.links = links
        queue.send_directly(self)

    @property
    def name(self) -> str:
        return "commands:modbus"

    async def send(self, command: Sendable) -> None:
        device = self.inventory.devices[command.device]
        spec = self.inventory.model_of(device).commands[command.command]
        link = self.links[device.gateway or ""]
        try:
            value = spec.render(command.action, command.arguments or {})
        except (KeyError, ValueError) as exc:
            await self.failed(command.id, command.device, f"arguments {command.arguments!r} do not fit: {exc}")
            return
        unit, table, address = device.unit or 0, spec.table or "coil", spec.address or 0
        if isinstance(value, str):
            await self.failed(command.id, command.device, f"{value!r} is not a Modbus value")
            return
        try:
            written = [bool(value)] if table == "coil" else [int(value)]
            [observed] = await link.write_and_read_back(unit, table, address, written)
        except LinkError as exc:
            await self.failed(command.id, command.device, str(exc))
            return
        expected = bool(value) if table == "coil" else int(value)
        if observed != expected:
            await self.failed(command.id, command.device, f"read back {observed!r}, expected {expected!r}")
            return
        self.confirm_soon(command)
