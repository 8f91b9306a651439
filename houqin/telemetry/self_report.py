"""houqin's own health as readings (measurement ``houqin``), so Grafana shows whether houqin keeps up beside
the devices it watches: the spool waiting for InfluxDB, points written, write errors, readings queued in
the pipeline. The figures are the process's Prometheus metrics, read by name, so this knows nothing of the
parts that keep them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry

from houqin.readings import Reading
from houqin.ticker import run_every

MEASUREMENT = "houqin"
# field -> the metric summed over all its labels
FIELDS = {
    "spool_points": "houqin_telemetry_spool_points",
    "spool_bytes": "houqin_telemetry_spool_bytes",
    "spool_dropped": "houqin_telemetry_spool_dropped_points_total",
    "points_written": "houqin_telemetry_points_written_total",
    "write_errors": "houqin_telemetry_write_errors_total",
    "pipeline_queued": "houqin_pipeline_queue_depth",
    "pipeline_dropped": "houqin_pipeline_dropped_total",
    "device_garbage": "houqin_device_garbage_total",
}


def metric_sums(registry: CollectorRegistry = REGISTRY) -> dict[str, float]:
    """Each metric of ``FIELDS`` summed over its labels; a metric not registered in this process is 0."""
    wanted = {metric: name for name, metric in FIELDS.items()}
    sums = dict.fromkeys(FIELDS, 0.0)
    for family in registry.collect():
        for sample in family.samples:
            name = wanted.get(sample.name)
            if name is not None:
                sums[name] += sample.value
    return sums


class SelfReport:
    """A component of ``houqin run``: one reading of houqin's own figures every ``every`` seconds."""

    name = "self-report"

    def __init__(
        self,
        publish: Callable[[Reading], Awaitable[None]],
        every: float = 30.0,
        instance: str | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.publish = publish
        self.every = every
        self.instance = instance or socket.gethostname()
        self.registry = registry

    def reading(self, now: datetime) -> Reading:
        tags = {"kind": MEASUREMENT, "instance": self.instance}
        return Reading(MEASUREMENT, now, metric_sums(self.registry), tags)

    async def _report(self) -> None:
        await self.publish(self.reading(datetime.now(UTC)))

    async def run(self, stop: asyncio.Event) -> None:
        await run_every(stop, self.every, self._report, "self report")
