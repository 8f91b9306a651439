"""Polls the devices of one Modbus link on their intervals, and turns registers into readings.

Tick k of a device fires at ``start + phase + k * interval`` (no drift however long a poll takes),
phases spread the devices of a bus evenly across the interval, and every field of one poll carries
the poll's timestamp. A device that keeps failing is backed off by a circuit breaker that probes it
now and then, so a dead meter costs its bus-mates at most one timeout per probe instead of one per poll.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from collectors.modbus_link import DeviceTimeout, LinkError, ModbusLink
from collectors.read_plan import ReadBlock, plan_reads
from collectors.registers import Value, decode_block
from houqin.inventory import Inventory
from houqin.inventory.model import Device
from houqin.readings import GarbageLog, Reading

log = logging.getLogger(__name__)

POLLS = Counter("houqin_modbus_polls_total", "Device polls", ["gateway", "result"])
POLL_SECONDS = Histogram("houqin_modbus_poll_seconds", "Time to read all blocks of a device", ["gateway"])

Publish = Callable[[Reading], Awaitable[None]]


@dataclass
class DeviceHealth:
    """What the poller knows about one device's behaviour on the bus."""

    consecutive_failures: int = 0
    open_until: float = 0.0  # circuit breaker: no polls before this (monotonic) time, except probes
    opened: int = 0
    last_success: float | None = None
    last_error: str = ""
    reported_online: bool | None = None  # what the last health reading said
    reported_at: float = -math.inf

    @property
    def online(self) -> bool:
        return self.consecutive_failures == 0 and self.last_success is not None


class ModbusBusPoller:
    """Polls every enabled device behind one link; a component of ``houqin run``."""

    def __init__(
        self,
        link: ModbusLink,
        devices: list[Device],
        inventory: Inventory,
        publish: Publish,
        failures_to_open: int = 3,
        probe_max: float = 300.0,
        capacity_window: float = 60.0,
        health_every: float = 60.0,
    ) -> None:
        self.link = link
        self.devices = [device for device in devices if device.enabled]
        self.inventory = inventory
        self.publish = publish
        self.failures_to_open = failures_to_open
        self.probe_max = probe_max
        self.health = {device.id: DeviceHealth() for device in self.devices}
        self._plans = {
            device.id: plan_reads(inventory.model_of(device).registers, max_gap=inventory.model_of(device).max_read_gap)
            for device in self.devices
        }
        self._tags = {device.id: inventory.device_tags(device) for device in self.devices}
        self.capacity_window = capacity_window
        self.health_every = health_every
        self.garbage = GarbageLog(log)
        # Labelled metric children looked up once: a poll is the hot path.
        self._polls_ok = POLLS.labels(link.name, "ok")
        self._polls_failed = POLLS.labels(link.name, "failed")
        self._poll_seconds = POLL_SECONDS.labels(link.name)
        self.polls = 0
        self.failed_polls = 0
        self.attempts = 0
        self.overruns = 0
        self.behind = False

    @property
    def name(self) -> str:
        return f"modbus:{self.link.name}"

    async def run(self, stop: asyncio.Event) -> None:
        start = time.monotonic()
        count = max(1, len(self.devices))
        tasks = [
            asyncio.create_task(self._poll_forever(device, start + device.poll_interval * index / count, stop))
            for index, device in enumerate(self.devices)
        ]
        tasks.append(asyncio.create_task(self._watch_capacity()))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.link.close()

    async def _poll_forever(self, device: Device, first_tick: float, stop: asyncio.Event) -> None:
        interval = device.poll_interval
        tick = 0
        while not stop.is_set():
            due = first_tick + tick * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.poll_once(device)
            # Skip ticks that already passed instead of polling in a burst to catch up.
            next_tick = math.floor((time.monotonic() - first_tick) / interval) + 1
            if next_tick > tick + 1:
                self.overruns += next_tick - tick - 1
            tick = max(tick + 1, next_tick)

    async def _watch_capacity(self) -> None:
        """Say once, with figures, when the bus cannot give its devices the poll rate they are configured for."""
        attempts, overruns = self.attempts, self.overruns
        while True:
            await asyncio.sleep(self.capacity_window)
            now = time.monotonic()
            needed = sum(1 / d.poll_interval for d in self.devices if self.health[d.id].open_until <= now)
            achieved = (self.attempts - attempts) / self.capacity_window
            missed = self.overruns - overruns
            attempts, overruns = self.attempts, self.overruns
            if missed and achieved < 0.95 * needed:
                if not self.behind:
                    log.warning(
                        "bus %s cannot keep up: %.1f polls/s needed, %.1f achieved (%d ticks missed in %.0f s); "
                        "lengthen poll intervals or split the bus",
                        self.link.name, needed, achieved, missed, self.capacity_window,
                    )  # fmt: skip
                self.behind = True
            elif self.behind:
                log.info("bus %s keeps up again: %.1f polls/s", self.link.name, achieved)
                self.behind = False

    async def poll_once(self, device: Device) -> Reading | None:
        """Poll ``device`` now (unless its breaker is open); publish and return its reading."""
        health = self.health[device.id]
        now = time.monotonic()
        if now < health.open_until:
            return None
        ts = datetime.now(UTC)
        self.attempts += 1
        started = time.perf_counter()
        try:
            fields = await self._read(device, self._plans[device.id])
        except LinkError as error:
            self._failed(device, health, str(error))
            self._polls_failed.inc()
            self.failed_polls += 1
            await self._publish_health(device, ts, None)
            return None
        latency = time.perf_counter() - started
        self._poll_seconds.observe(latency)
        self._polls_ok.inc()
        self.polls += 1
        if health.consecutive_failures:
            log.info("%s answers again after %d failed polls", device.id, health.consecutive_failures)
        health.consecutive_failures = 0
        health.open_until = 0.0
        health.opened = 0
        health.last_success = time.monotonic()
        reading = Reading(device.id, ts, fields, self._tags[device.id])
        if fields:
            await self.publish(reading)
        await self._publish_health(device, ts, latency)
        return reading

    async def _read_block(self, device: Device, block: ReadBlock) -> list[int] | list[bool]:
        # A device that was answering gets the gateway's retries (RS-485 noise loses a frame now and
        # then); one already failing gets a single attempt, so a dead meter costs its bus-mates at most
        # one timeout per poll. Before a retry the request goes to the back of the bus queue, so the
        # bus-mates waiting for the bus are served first.
        retries = self.link.gateway.retries if self.health[device.id].consecutive_failures == 0 else 0
        for attempt in range(retries + 1):
            try:
                return await self.link.read(device.unit or 0, block.table, block.address, block.count)
            except DeviceTimeout:
                if attempt == retries:
                    raise
                await asyncio.sleep(0)
        raise AssertionError("unreachable")

    async def _read(self, device: Device, plan: list[ReadBlock]) -> dict[str, Value]:
        fields: dict[str, Value] = {}
        for block in plan:
            data = await self._read_block(device, block)
            fields.update(decode_block(block, data, lambda what: self.garbage.report(device.id, what)))
        return fields

    def _failed(self, device: Device, health: DeviceHealth, error: str) -> None:
        health.consecutive_failures += 1
        health.last_error = error
        if health.consecutive_failures == 1:
            log.error("%s: %s", device.id, error)
        else:
            log.debug("%s: %s (%d in a row)", device.id, error, health.consecutive_failures)
        if health.consecutive_failures >= self.failures_to_open:
            # Probe after 2, 4, 8... intervals, at most probe_max: a meter that comes back is found soon,
            # a dead one costs its bus one timeout per probe.
            backoff = min(self.probe_max, device.poll_interval * 2 ** (health.opened + 1))
            health.open_until = time.monotonic() + backoff
            health.opened += 1

    async def _publish_health(self, device: Device, ts: datetime, latency: float | None) -> None:
        """A health reading when the device goes on- or offline, and otherwise once per ``health_every``:
        one per poll would double what every poll costs and what InfluxDB stores, to say "still fine"."""
        health = self.health[device.id]
        online = latency is not None
        now = time.monotonic()
        if online == health.reported_online and now - health.reported_at < self.health_every:
            return
        health.reported_online, health.reported_at = online, now
        fields: dict[str, Value] = {
            "online": latency is not None,
            "consecutive_failures": health.consecutive_failures,
        }
        if latency is not None:
            fields["poll_latency_ms"] = latency * 1000.0
        tags = {**self._tags[device.id], "kind": "device_health", "device_kind": self._tags[device.id]["kind"]}
        await self.publish(Reading(device.id, ts, fields, tags))
