"""What the bus-polling benchmarks share: a sink that counts, and the measurement of a set of bus pollers
(achieved polls/s per bus over a window once every device has had its first tick, and houqin's CPU per
poll in that window)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from collectors.modbus_poller import ModbusBusPoller
from collectors.pipeline import Pipeline
from houqin.readings import Reading


class CountingSink:
    name = "count"

    def __init__(self) -> None:
        self.readings = 0

    async def consume(self, readings: list[Reading]) -> None:
        self.readings += len(readings)


async def measure(
    pollers: list[ModbusBusPoller],
    pipeline: Pipeline,
    sink: CountingSink,
    interval: float,
    seconds: float,
    then: Callable[[], Awaitable[None]] | None = None,
) -> tuple[list[float], float]:
    """Run the pollers; polls/s of each over ``seconds`` after ``interval``, and CPU seconds per poll;
    ``then`` runs after the window, while the pollers still run."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(pipeline.run(stop))] + [asyncio.create_task(p.run(stop)) for p in pollers]
    await asyncio.sleep(interval)  # every device has had its first tick: the buses are in their stride
    polls_before = [p.polls for p in pollers]
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    rates = [(p.polls - before) / wall for p, before in zip(pollers, polls_before, strict=True)]
    failed = sum(p.failed_polls for p in pollers)
    timeouts = sum(p.link.timeouts for p in pollers)
    print(f"houqin: {sum(p.polls for p in pollers)} polls, {failed} failed, {timeouts} timeouts, "
          f"{sink.readings} readings through the pipeline")  # fmt: skip
    if then is not None:
        await then()
    stop.set()
    await asyncio.gather(*tasks)
    return rates, cpu / max(1, sum(p.polls - b for p, b in zip(pollers, polls_before, strict=True)))
