"""Whether a device silent to this process was heard by another. With several processes on one database a
device's readings reach one of them only — the process that owns its gateway, or for MQTT whichever member
of the shared group the broker hands each message — but all of them reach the shared telemetry store. So
before an offline rule calls a device silent, it asks the store when the device was last heard of: a
device another process reads is not offline, and a fault this process opened for a device that has since
moved to another process clears when the store shows it answering."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from houqin.telemetry import TelemetryStore
from rules.conditions import Verdict, Watch, elapse

log = logging.getLogger(__name__)

# A device heard nowhere is asked about again after this (a dead meter is not a query every tick).
ASK_AGAIN = timedelta(seconds=60)
HEALTH = "device_health"  # a failed poll writes one too: it is not a sign of life
CHUNK = 500  # devices per query: another process's whole share falls silent here at once


class SharedSilence:
    def __init__(self, telemetry: TelemetryStore) -> None:
        self.telemetry = telemetry
        self._ask_after: dict[str, datetime] = {}
        self._unreadable = False

    async def verdicts(self, silent: list[tuple[Watch, Verdict]], now: datetime) -> list[tuple[Watch, Verdict]]:
        """The silent watches' verdicts once the store has been asked: a device heard since its watch last
        saw it is not silent (its silence clock restarts from that reading, and a fault it has may clear);
        the rest stay silent. While the store cannot be read no device is called silent: without it this
        process cannot tell a dead device from another process's."""
        heard = await self._heard({watch.device.id for watch, _ in silent}, now)
        if heard is None:
            return []
        decided = []
        for watch, verdict in silent:
            last = heard.get(watch.device.id)
            if last is not None and watch.last_seen is not None and last > watch.last_seen:
                watch.last_seen = last
                verdict = elapse(watch, now) or Verdict(bad=False, good=True)
            decided.append((watch, verdict))
        return decided

    async def _heard(self, devices: Collection[str], now: datetime) -> dict[str, datetime] | None:
        due = sorted(device for device in devices if self._ask_after.get(device, now) <= now)
        if not due:
            return {}
        try:
            points = [point for start in range(0, len(due), CHUNK)
                      for point in await self.telemetry.latest(due[start : start + CHUNK])]  # fmt: skip
        except Exception as exc:
            if not self._unreadable:
                log.warning("rules: offline checks wait, the telemetry store cannot be read (%s: %s)",
                            type(exc).__name__, exc)  # fmt: skip
            self._unreadable = True
            return None
        if self._unreadable:
            log.info("rules: the telemetry store answers again; offline checks resume")
            self._unreadable = False
        latest: dict[str, datetime] = {}
        for point in points:
            if point.measurement != HEALTH and (point.device not in latest or point.ts > latest[point.device]):
                latest[point.device] = point.ts
        for device in due:
            if device not in latest:
                self._ask_after[device] = now + ASK_AGAIN
        return latest
