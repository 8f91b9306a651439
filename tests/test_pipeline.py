"""The reading pipeline: fan-out in order, bounded memory, slow and failing sinks."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from collectors.pipeline import Pipeline
from houqin.readings import Reading


def reading(n: int) -> Reading:
    return Reading("m1", datetime.now(UTC), {"energy": float(n)}, {"kind": "electricity"})


class Recorder:
    def __init__(self, name: str, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.name = name
        self.delay = delay
        self.fail_on = fail_on
        self.seen: list[float] = []
        self.batches = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def consume(self, readings: Sequence[Reading]) -> None:
        self.batches += 1
        await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_on is not None and any(r.fields["energy"] == self.fail_on for r in readings):
            raise RuntimeError("sink broke")
        self.seen.extend(float(r.fields["energy"]) for r in readings)


async def run_pipeline(pipeline: Pipeline) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(pipeline.run(stop))


async def test_every_sink_sees_every_reading_in_order() -> None:
    pipeline = Pipeline(queue_size=50, max_batch=7)
    a, b = Recorder("a"), Recorder("b", delay=0.001)
    pipeline.add_sink(a)
    pipeline.add_sink(b)
    stop, task = await run_pipeline(pipeline)
    for n in range(500):
        await pipeline.publish(reading(n))
    stop.set()
    await task
    assert a.seen == b.seen == [float(n) for n in range(500)]


async def test_a_blocked_sink_holds_publishers_back_with_bounded_memory() -> None:
    pipeline = Pipeline(queue_size=10, max_batch=5)
    slow = Recorder("billing")
    slow.gate.clear()
    pipeline.add_sink(slow)
    stop, task = await run_pipeline(pipeline)
    publisher = asyncio.create_task(asyncio.wait_for(_publish_range(pipeline, 100), 60))
    await asyncio.sleep(0.2)
    assert not publisher.done()
    assert pipeline.stats()["billing"]["queued"] <= 10
    slow.gate.set()
    await publisher
    stop.set()
    await task
    assert slow.seen == [float(n) for n in range(100)]


async def _publish_range(pipeline: Pipeline, count: int) -> None:
    for n in range(count):
        await pipeline.publish(reading(n))


async def test_drop_oldest_counts_what_it_sheds_and_keeps_the_newest() -> None:
    pipeline = Pipeline(queue_size=10, max_batch=100)
    lagging = Recorder("archive")
    lagging.gate.clear()
    pipeline.add_sink(lagging, policy="drop_oldest")
    stop, task = await run_pipeline(pipeline)
    await asyncio.sleep(0)  # the worker takes reading 0 and waits at the gate
    await asyncio.wait_for(_publish_range(pipeline, 100), 5)  # never waits
    lagging.gate.set()
    stop.set()
    await task
    stats = pipeline.stats()["archive"]
    assert stats["dropped"] + len(lagging.seen) == 100
    assert lagging.seen[-10:] == [float(n) for n in range(90, 100)]
    assert stats["dropped"] >= 80


async def test_a_failing_sink_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    pipeline = Pipeline(queue_size=100, max_batch=1)
    broken, healthy = Recorder("broken", fail_on=3), Recorder("healthy")
    pipeline.add_sink(broken)
    pipeline.add_sink(healthy)
    stop, task = await run_pipeline(pipeline)
    await _publish_range(pipeline, 10)
    stop.set()
    await task
    assert healthy.seen == [float(n) for n in range(10)]
    assert broken.seen == [float(n) for n in range(10) if n != 3]
    assert pipeline.stats()["broken"]["errors"] == 1
    assert "sink broken failed a batch of 1 readings" in caplog.text


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Reading("m1", datetime(2026, 1, 1), {"x": 1.0})


def test_device_tags_come_from_the_inventory(demo_inventory) -> None:  # type: ignore[no-untyped-def]
    tags = demo_inventory.device_tags(demo_inventory.devices["d2-305-meter"])
    assert tags == {"device": "d2-305-meter", "kind": "electricity", "model": "eastron-sdm120",
                    "building": "dorm-2", "floor": "3", "room": "D2-305", "gateway": "dorm2-f3",
                    "energy_code": "01A00"}  # fmt: skip
    relay = demo_inventory.device_tags(demo_inventory.devices["d2-305-relay"])
    assert "energy_code" not in relay  # a relay module meters no energy


async def test_settled_returns_once_the_settling_sink_has_every_reading_published_before() -> None:
    pipeline = Pipeline(queue_size=100, max_batch=3)
    store, rules = Recorder("store"), Recorder("rules")
    rules.gate.clear()  # a slow sink that does not settle holds nobody's acknowledgement
    pipeline.add_sink(store, settle=True)
    pipeline.add_sink(rules)
    with pytest.raises(ValueError, match="cannot shed"):
        pipeline.add_sink(Recorder("x"), policy="drop_oldest", settle=True)
    assert pipeline.settles
    store.gate.clear()
    stop, task = await run_pipeline(pipeline)
    for n in range(7):
        await pipeline.publish(reading(n))
    settled = asyncio.create_task(pipeline.settled())
    await asyncio.sleep(0.05)
    assert not settled.done()  # the store has none of them yet
    store.gate.set()
    assert await asyncio.wait_for(settled, 2) is True
    assert store.seen == [float(n) for n in range(7)]
    assert await asyncio.wait_for(pipeline.settled(), 0.1) is True  # nothing outstanding: at once
    rules.gate.set()
    stop.set()
    await task


async def test_a_source_waiting_to_settle_is_released_when_the_pipeline_stops() -> None:
    """A stop while the store hangs: the waiting poller or MQTT link is told False (nothing acknowledged),
    instead of holding the shutdown forever."""
    pipeline = Pipeline(queue_size=10, max_batch=5, drain_timeout=0.1)
    store = Recorder("store")
    store.gate.clear()
    pipeline.add_sink(store, settle=True)
    stop, task = await run_pipeline(pipeline)
    await pipeline.publish(reading(1))
    settled = asyncio.create_task(pipeline.settled())
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert await asyncio.wait_for(settled, 1) is False
    assert await pipeline.settled() is False  # and so is anyone who asks afterwards


class Gatherer(Recorder):
    """A sink that pays per batch (as billing's transaction does) and asks for its readings gathered."""

    gather_s = 0.3


async def test_a_gathering_sink_gets_its_readings_in_fewer_larger_batches() -> None:
    pipeline = Pipeline()
    plain, gathering = Recorder("plain"), Gatherer("billing")
    pipeline.add_sink(plain)
    pipeline.add_sink(gathering)
    stop, task = await run_pipeline(pipeline)
    for n in range(20):  # a reading every 20 ms, as a bus's meters answer one after another
        await pipeline.publish(reading(n))
        await asyncio.sleep(0.02)
    stop.set()  # the stop still hands over what is gathering
    await task
    assert plain.seen == gathering.seen == [float(n) for n in range(20)]
    assert plain.batches >= 10 and gathering.batches <= 3, (plain.batches, gathering.batches)
