"""The reading pipeline: fans readings out to every sink through its own bounded queue.

Each sink gets a queue and a worker that hands it batches in arrival order. Memory is bounded by the
queue sizes. When a sink falls behind, its policy decides: ``block`` (the default) holds the collectors
back — right for billing and rules, which must see every reading — while ``drop_oldest`` keeps the
collectors at full rate and counts every reading it sheds (for sinks that can afford it). A sink that
raises is counted and logged; the others go on.

A sink added with ``settle=True`` (the telemetry store, when readings must survive a crash) has what it
consumed on disk when ``consume`` returns; ``settled()`` waits until every reading published so far has
been consumed by such sinks, so a source acknowledges a reading to its device or broker only then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import Counter, Gauge

from houqin.readings import GatheringSink, Reading, ReadingSink

log = logging.getLogger(__name__)

QUEUE_DEPTH = Gauge("houqin_pipeline_queue_depth", "Readings waiting for a sink", ["sink"])
CONSUMED = Counter("houqin_pipeline_consumed_total", "Readings handed to a sink", ["sink"])
DROPPED = Counter("houqin_pipeline_dropped_total", "Readings shed because a sink fell behind", ["sink"])
SINK_ERRORS = Counter("houqin_pipeline_sink_errors_total", "Batches a sink failed to consume", ["sink"])

Policy = Literal["block", "drop_oldest"]
SETTLE_LINGER = 0.002


@dataclass
class _Lane:
    sink: ReadingSink
    policy: Policy
    queue: asyncio.Queue[Reading]
    dropped: int = 0
    consumed: int = 0
    errors: int = 0
    last_drop_log: float = field(default=0.0)
    settle: bool = False
    linger: float = 0.0  # after the first reading of a batch, wait this long for more
    taken: int = 0  # readings ever queued
    handed: int = 0  # readings ever handed to the sink (consumed, or failed and counted)
    waiters: deque[tuple[int, asyncio.Future[bool]]] = field(default_factory=deque)

    def hand_over(self, count: int) -> None:
        self.handed += count
        while self.waiters and self.waiters[0][0] <= self.handed:
            waiter = self.waiters.popleft()[1]
            if not waiter.done():
                waiter.set_result(True)

    def give_up(self) -> None:
        """The pipeline stopped: whoever waits is told its readings did not settle."""
        while self.waiters:
            waiter = self.waiters.popleft()[1]
            if not waiter.done():
                waiter.set_result(False)


class Pipeline:
    """Fan-out of readings to sinks. Run it as a component; ``publish`` from collectors."""

    name = "pipeline"

    def __init__(
        self, queue_size: int = 10_000, max_batch: int = 1_000, drain_timeout: float = 10.0, linger: float = 0.01
    ) -> None:
        if queue_size < 1 or max_batch < 1:
            raise ValueError("queue_size and max_batch must be at least 1")
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.drain_timeout = drain_timeout
        # After the first reading of a batch, wait this long for more: handing sinks one reading per
        # wake-up costs a task switch per reading, which at MQTT rates is most of the pipeline's CPU.
        self.linger = linger
        self._lanes: list[_Lane] = []
        self._settling: list[_Lane] = []
        self._stopped = False

    def add_sink(self, sink: ReadingSink, policy: Policy = "block", settle: bool = False) -> None:
        if settle and policy != "block":
            raise ValueError("a sink readings settle in cannot shed them")
        linger = sink.gather_s if isinstance(sink, GatheringSink) else self.linger
        if settle:
            linger = min(linger, SETTLE_LINGER)  # sources wait on a settling lane: the fsync batches the rest
        lane = _Lane(sink, policy, asyncio.Queue(self.queue_size), settle=settle, linger=linger)
        self._lanes.append(lane)
        if settle:
            self._settling.append(lane)

    @property
    def settles(self) -> bool:
        """Whether readings are acknowledged to their sources only once a durable sink has them."""
        return bool(self._settling)

    async def settled(self) -> bool:
        """Wait until every reading published before this call is consumed by the ``settle`` sinks: True.
        False if the pipeline stopped first (a source then must not acknowledge them)."""
        for lane in self._settling:
            if lane.handed >= lane.taken:
                continue
            if self._stopped:
                return False
            waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            lane.waiters.append((lane.taken, waiter))
            if not await waiter:
                return False
        return True

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            lane.sink.name: {
                "queued": lane.queue.qsize(),
                "consumed": lane.consumed,
                "dropped": lane.dropped,
                "errors": lane.errors,
            }
            for lane in self._lanes
        }

    async def publish(self, reading: Reading) -> None:
        """Queue ``reading`` for every sink; waits while a ``block`` sink's queue is full."""
        for lane in self._lanes:
            if lane.policy == "block":
                if lane.queue.full():
                    await lane.queue.put(reading)
                else:
                    lane.queue.put_nowait(reading)
                lane.taken += 1
                continue
            if lane.queue.full():
                lane.queue.get_nowait()
                lane.queue.task_done()
                lane.dropped += 1
                DROPPED.labels(lane.sink.name).inc()
                self._log_drop(lane)
            lane.queue.put_nowait(reading)

    def _log_drop(self, lane: _Lane) -> None:
        now = time.monotonic()
        if now - lane.last_drop_log >= 60:
            lane.last_drop_log = now
            log.warning("sink %s is behind: %d readings shed so far (queue of %d full)",
                        lane.sink.name, lane.dropped, self.queue_size)  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        workers = [asyncio.create_task(self._work(lane), name=f"sink:{lane.sink.name}") for lane in self._lanes]
        try:
            await stop.wait()
            # Hand over what is already queued before stopping, within a bound.
            drained = asyncio.gather(*(lane.queue.join() for lane in self._lanes))
            try:
                await asyncio.wait_for(drained, self.drain_timeout)
            except TimeoutError:
                log.warning("pipeline stopped with readings still queued: %s", self.stats())
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self._stopped = True
            for lane in self._settling:
                lane.give_up()

    async def _work(self, lane: _Lane) -> None:
        name = lane.sink.name
        while True:
            batch = [await lane.queue.get()]
            if lane.linger and lane.queue.qsize() < self.max_batch:
                await asyncio.sleep(lane.linger)
            while len(batch) < self.max_batch and not lane.queue.empty():
                batch.append(lane.queue.get_nowait())
            QUEUE_DEPTH.labels(name).set(lane.queue.qsize())
            try:
                await lane.sink.consume(batch)
                lane.consumed += len(batch)
                CONSUMED.labels(name).inc(len(batch))
            except asyncio.CancelledError:
                raise  # cut short by the stop: not handed over (its waiters are told so)
            except Exception:
                # The sink owns its durability (the telemetry store spools); the pipeline must go on, and
                # later readings must not wait on these: they count as handed over.
                lane.errors += 1
                SINK_ERRORS.labels(name).inc()
                log.exception("sink %s failed a batch of %d readings", name, len(batch))
            finally:
                for _ in batch:
                    lane.queue.task_done()
            lane.hand_over(len(batch))
