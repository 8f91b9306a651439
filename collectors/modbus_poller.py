"""Polls the devices of one bus (a Modbus, DL/T 645 or CJ/T 188 link) on their intervals, and turns what
they answer into readings (the protocol's part is in ``read_steps``).

Tick k of a device fires at ``start + phase + k * interval`` (no drift however long a poll takes),
phases spread the devices of a bus evenly across the interval, and every field of one poll carries
the poll's timestamp. A device that keeps failing is backed off by a circuit breaker that probes it
now and then, so a dead meter costs its bus-mates at most one timeout per probe instead of one per poll.

One scheduler per bus: the polls wait in a heap ordered by due time, and as many workers as the link
allows requests in flight take them in order. A poll is not a task of its own, so a saturated bus costs
no timers and no wake-ups beyond the requests themselves.

A bus behind a DTU that dials in is unreachable while the DTU is away, and its devices' breakers open.
When the DTU dials in again, the devices that were failing are due at once: the bus is polled again
within a request's time, not at the next breaker probe (up to ``probe_max`` later).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from collectors.cjt188.link import Cjt188Link
from collectors.dlt645.link import Dlt645Link
from collectors.link_errors import DeviceTimeout, LinkError
from collectors.modbus_link import ModbusLink
from collectors.read_steps import ReadStep, read_steps
from collectors.registers import Value
from houqin.backoff import Backoff
from houqin.inventory import Inventory
from houqin.inventory.model import Device
from houqin.readings import GarbageLog, Publish, Reading, Settled

log = logging.getLogger(__name__)

POLLS = Counter("houqin_modbus_polls_total", "Device polls", ["gateway", "result"])
POLL_SECONDS = Histogram("houqin_modbus_poll_seconds", "Time to read all blocks of a device", ["gateway"])


@dataclass
class DeviceHealth:
    """What the poller knows about one device's behaviour on the bus."""

    consecutive_failures: int = 0
    open_until: float = 0.0  # circuit breaker: no polls before this (monotonic) time, except probes
    opened: int = 0
    last_success: float | None = None
    last_error: str = ""
    reported_online: bool | None = None  # what the last health reading said
    # Since start, for error rates: health readings are sparse (on a change, or once per health_every),
    # so a rate must come from counters, not from counting readings.
    polls: int = 0
    failures: int = 0
    reported_at: float = -math.inf

    @property
    def online(self) -> bool:
        return self.consecutive_failures == 0 and self.last_success is not None


@dataclass
class _Slot:
    """A device's place in its bus's schedule: tick k is due at ``first_tick + k * poll_interval``."""

    device: Device
    first_tick: float
    tick: int = 0


@dataclass
class _Poll:
    """One poll in progress: the blocks still to read, the fields read so far, the retries left."""

    device: Device
    slot: _Slot | None  # None for a poll asked for outside the schedule
    ts: datetime  # every field of the poll carries the time it began
    started: float
    retries_left: int
    next_block: int = 0
    fields: dict[str, Value] = field(default_factory=dict)
    reading: Reading | None = None


class ModbusBusPoller:
    """Polls every enabled device behind one link; a component of ``houqin run``."""

    def __init__(
        self,
        link: ModbusLink | Dlt645Link | Cjt188Link,
        devices: list[Device],
        inventory: Inventory,
        publish: Publish,
        failures_to_open: int = 3,
        probe_max: float = 300.0,
        capacity_window: float = 60.0,
        health_every: float = 60.0,
        settled: Settled | None = None,
    ) -> None:
        self.link = link
        self.devices = [device for device in devices if device.enabled]
        self.inventory = inventory
        self.publish = publish
        # When readings must survive a crash, a poll counts once its reading is on disk.
        self.settled = settled
        self.failures_to_open = failures_to_open
        self.probe_max = probe_max
        self.health = {device.id: DeviceHealth() for device in self.devices}
        # Read steps (and their decoders) are built once per model, shared by its devices.
        steps: dict[str, list[ReadStep]] = {}
        for device in self.devices:
            if device.model not in steps:
                steps[device.model] = read_steps(link, inventory.model_of(device))
        self._plans = {device.id: steps[device.model] for device in self.devices}
        self._tags = {device.id: inventory.device_tags(device) for device in self.devices}
        self.capacity_window = capacity_window
        self.health_every = health_every
        self.garbage = GarbageLog(log)
        self._due: list[tuple[float, int, _Slot | _Poll]] = []  # heap: what each worker takes next
        self._sequence = itertools.count()  # ties go first come, first served
        # Labelled metric children looked up once: a poll is the hot path.
        self._polls_ok = POLLS.labels(link.name, "ok")
        self._polls_failed = POLLS.labels(link.name, "failed")
        self._poll_seconds = POLL_SECONDS.labels(link.name)
        self._naps: set[asyncio.Future[bool]] = set()  # workers waiting for their next poll's time
        self._pulled: set[str] = set()  # devices made due at once when their DTU dialled in again
        if link.line is not None:
            link.line.on_connect(self._gateway_back)
        self.polls = 0
        self.failed_polls = 0
        self.attempts = 0
        self.overruns = 0
        self.behind = False

    @property
    def name(self) -> str:
        return f"modbus:{self.link.name}"

    async def run(self, stop: asyncio.Event) -> None:
        now = time.monotonic()
        self._due = []  # a poller runs again when its gateway comes back to this process
        count = max(1, len(self.devices))
        for index, device in enumerate(self.devices):
            # Slots on a grid of the device's interval, not from this poller's start: the buses of a process
            # then come due together however their pollers started (a gateway taken over from a dead process,
            # one at a time from a busy one), and the event loop wakes once for all of them. Started at
            # different moments, 20 buses of 50 meters woke a process 100 times a second more. A slot whose
            # first time has passed is due now.
            grid = now - now % device.poll_interval
            slot = _Slot(device, first_tick=grid + device.poll_interval * index / count)
            self._push(max(now, slot.first_tick), slot)
        # One worker per request the link may have in flight (one, on an RS-485 bus): a worker takes the
        # poll that is due first, so the bus never idles while a device is due and no device waits behind
        # a bus-mate that is not.
        workers = min(self.link.gateway.max_in_flight, len(self.devices))
        tasks = [asyncio.create_task(self._work(stop)) for _ in range(workers)]
        tasks.append(asyncio.create_task(self._watch_capacity()))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.link.close()

    def _push(self, due: float, item: _Slot | _Poll) -> None:
        heapq.heappush(self._due, (due, next(self._sequence), item))

    async def _work(self, stop: asyncio.Event) -> None:
        # Every item is in the heap or in one worker's hands, and there are no more workers than
        # devices: the heap is never empty when a worker pops. The loop also ends on ``stop``: on
        # Python 3.11 a cancellation that lands as a reply arrives can be swallowed by ``wait_for``
        # inside the Modbus client, and a worker that missed it must not poll on and hang the stop.
        while not stop.is_set():
            due, _, item = heapq.heappop(self._due)
            delay = due - time.monotonic()
            if delay > 0 and not await self._nap(delay):
                # Woken early: the schedule changed. The item goes back (due now if its device was pulled
                # forward) and the worker takes whatever is due first.
                self._push(time.monotonic() if item.device.id in self._pulled else due, item)
                continue
            poll = self._begin(item.device, item) if isinstance(item, _Slot) else item
            if not await self._advance(poll):
                # A lost frame: the retry goes behind the bus-mates that are already due.
                self._push(time.monotonic(), poll)
            elif poll.slot is not None:
                self._schedule_next(poll.slot)

    async def _nap(self, delay: float) -> bool:
        """Sleep ``delay`` seconds: True, or False when ``_gateway_back`` wakes the worker early. (What
        ``asyncio.sleep`` does, a future and a timer, with a way to end it.)"""
        loop = asyncio.get_running_loop()
        nap: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(delay, _wake, nap, True)
        self._naps.add(nap)
        try:
            return await nap
        finally:
            timer.cancel()
            self._naps.discard(nap)

    def _gateway_back(self) -> None:
        """The bus's DTU dialled in: every device that was failing is due now, breaker or not."""
        now = time.monotonic()
        self._pulled = {device.id for device in self.devices if self.health[device.id].consecutive_failures}
        if not self._pulled:
            return
        for device_id in self._pulled:
            self.health[device_id].open_until = 0.0
        pulled = self._pulled
        self._due = [
            (min(due, now) if item.device.id in pulled else due, sequence, item) for due, sequence, item in self._due
        ]
        heapq.heapify(self._due)
        for nap in list(self._naps):
            _wake(nap, False)

    def _schedule_next(self, slot: _Slot) -> None:
        interval = slot.device.poll_interval
        # A tick that came while the bus was busy is polled as soon as the bus is free (the most overdue
        # first); older ones are skipped instead of polled in a burst to catch up.
        latest = math.floor((time.monotonic() - slot.first_tick) / interval)
        if latest > slot.tick + 1:
            self.overruns += latest - slot.tick - 1
        slot.tick = max(slot.tick + 1, latest)
        # An open breaker: the next poll is the first tick at or after the probe time.
        open_until = self.health[slot.device.id].open_until
        if open_until > slot.first_tick + slot.tick * interval:
            slot.tick = math.ceil((open_until - slot.first_tick) / interval)
        self._push(slot.first_tick + slot.tick * interval, slot)

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
        """Poll ``device`` now (unless its breaker is open), retries included; publish and return its reading."""
        if time.monotonic() < self.health[device.id].open_until:
            return None
        poll = self._begin(device, None)
        while not await self._advance(poll):
            pass
        return poll.reading

    def _begin(self, device: Device, slot: _Slot | None) -> _Poll:
        self.attempts += 1
        # A device that was answering gets the gateway's retries (RS-485 noise loses a frame now and
        # then); one already failing gets a single attempt, so a dead meter costs its bus-mates at most
        # one timeout per poll.
        retries = self.link.gateway.retries if self.health[device.id].consecutive_failures == 0 else 0
        return _Poll(device, slot, datetime.now(UTC), time.perf_counter(), retries)

    async def _advance(self, poll: _Poll) -> bool:
        """Read the poll's remaining blocks. True when the poll is over (read or failed), False when a
        block timed out and the poll has a retry left: it resumes at that block."""
        device = poll.device
        plan = self._plans[device.id]
        try:
            while poll.next_block < len(plan):
                step = plan[poll.next_block]
                poll.fields.update(await step.read(device, lambda what: self.garbage.report(device.id, what)))
                poll.next_block += 1
        except DeviceTimeout as error:
            if poll.retries_left > 0:
                poll.retries_left -= 1
                return False
            await self._fail(poll, str(error))
            return True
        except LinkError as error:
            await self._fail(poll, str(error))
            return True
        await self._succeed(poll)
        return True

    async def _succeed(self, poll: _Poll) -> None:
        device, health = poll.device, self.health[poll.device.id]
        latency = time.perf_counter() - poll.started
        poll.reading = Reading(device.id, poll.ts, poll.fields, self._tags[device.id])
        if poll.fields:
            await self.publish(poll.reading)
            if self.settled is not None:
                await self.settled()
        self._poll_seconds.observe(latency)
        self._polls_ok.inc()
        self.polls += 1
        health.polls += 1
        if health.consecutive_failures:
            log.info("%s answers again after %d failed polls", device.id, health.consecutive_failures)
        health.consecutive_failures = 0
        health.open_until = 0.0
        health.opened = 0
        health.last_success = time.monotonic()
        await self._publish_health(device, poll.ts, latency)

    async def _fail(self, poll: _Poll, error: str) -> None:
        self._failed(poll.device, self.health[poll.device.id], error)
        self._polls_failed.inc()
        self.failed_polls += 1
        await self._publish_health(poll.device, poll.ts, None)

    def _failed(self, device: Device, health: DeviceHealth, error: str) -> None:
        health.consecutive_failures += 1
        health.polls += 1
        health.failures += 1
        health.last_error = error
        if health.consecutive_failures == 1:
            log.error("%s: %s", device.id, error)
        else:
            log.debug("%s: %s (%d in a row)", device.id, error, health.consecutive_failures)
        if health.consecutive_failures >= self.failures_to_open:
            # Probe after 2, 4, 8... intervals, at most probe_max: a meter that comes back is found soon,
            # a dead one costs its bus one timeout per probe.
            backoff = Backoff(2 * device.poll_interval, self.probe_max).delay(health.opened + 1)
            health.open_until = time.monotonic() + backoff
            health.opened += 1

    async def _publish_health(self, device: Device, ts: datetime, latency: float | None) -> None:
        """A health reading on every failed poll (so the device view shows the failures as the link counts
        them: only failing devices pay, and the breaker keeps their polls few), when the device comes back,
        and otherwise once per ``health_every``: one per good poll would double what every poll costs and
        what InfluxDB stores, to say "still fine"."""
        health = self.health[device.id]
        online = latency is not None
        now = time.monotonic()
        if online and health.reported_online and now - health.reported_at < self.health_every:
            return
        health.reported_online, health.reported_at = online, now
        fields: dict[str, Value] = {
            "online": latency is not None,
            "consecutive_failures": health.consecutive_failures,
            "polls_total": health.polls,
            "failures_total": health.failures,
        }
        if latency is not None:
            fields["poll_latency_ms"] = latency * 1000.0
        tags = {**self._tags[device.id], "kind": "device_health", "device_kind": self._tags[device.id]["kind"]}
        await self.publish(Reading(device.id, ts, fields, tags))


def _wake(nap: asyncio.Future[bool], on_time: bool) -> None:
    if not nap.done():
        nap.set_result(on_time)
