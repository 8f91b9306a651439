"""Turns what a zone should do into rows: a firing record and one command per output, in one transaction.

Both the scheduler and the API (an override or an emergency broadcast takes effect at once) write
through here. Keys make it exactly-once: a firing already recorded (a restart that replays the last
seconds, two processes reacting to the same emergency) queues nothing again. Written in bulk, because
hundreds of zones share the 08:00 bell.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, tuple_, update

from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.schedules.zones import Output, ZoneActionError, device_action, zone_outputs
from houqin.store import Database
from houqin.store.tables import DeviceCommand, ScheduleFiring

log = logging.getLogger(__name__)

_CHUNK = 400  # keys per IN (...) list


@dataclass(frozen=True)
class Firing:
    """A zone action at a due time, and what became of it: ``fired``, ``missed`` or ``suppressed``."""

    zone: str
    cause: str
    action: str
    due: datetime
    outcome: str = "fired"
    detail: str = ""
    level: int | None = None
    programme: str | None = None
    duration_s: int | None = None
    deadline: datetime | None = None

    @property
    def key(self) -> str:
        text = f"{self.zone}|{self.cause}|{self.due.astimezone(UTC).isoformat()}"
        return text if len(text) <= 160 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _command_key(firing_key: str, output: Output) -> str:
    return "fire:" + hashlib.sha256(f"{firing_key}|{output.device}|{output.command}".encode()).hexdigest()[:60]


class ZoneCommander:
    def __init__(self, database: Database, inventory: Inventory, commands: CommandQueue) -> None:
        self.database = database
        self.inventory = inventory
        self.commands = commands
        self.outputs = {zone.id: zone_outputs(inventory, zone) for zone in inventory.zones.values()}

    async def record(self, firings: Sequence[Firing], now: datetime, requested_by: str = "scheduler") -> list[Firing]:
        """Write the firings not written before and queue the commands of those that fired; the ones written."""
        if not firings:
            return []
        unique = list({firing.key: firing for firing in firings}.values())
        async with self.database.session() as session:
            existing: set[str] = set()
            for start in range(0, len(unique), _CHUNK):
                keys = [firing.key for firing in unique[start : start + _CHUNK]]
                found = await session.execute(select(ScheduleFiring.key).where(ScheduleFiring.key.in_(keys)))
                existing.update(found.scalars())
            new = [firing for firing in unique if firing.key not in existing]
            if not new:
                return []
            rows: list[dict[str, Any]] = []
            commands: list[dict[str, Any]] = []
            planned: set[tuple[str, str, str, str]] = set()
            for firing in new:
                detail = firing.detail
                if firing.outcome == "fired":
                    made, problems = self._commands(firing, now, requested_by)
                    for command in made:
                        # A device in two zones fired together (the campus PA and the teaching bells) gets it once.
                        what = (command["device"], command["command"], command["action"], repr(command["arguments"]))
                        if what not in planned:
                            planned.add(what)
                            commands.append(command)
                    if problems:
                        detail = "; ".join(filter(None, [detail, *problems]))
                rows.append(
                    {
                        "key": firing.key,
                        "zone": firing.zone,
                        "cause": firing.cause,
                        "action": firing.action,
                        "due_at": firing.due,
                        "recorded_at": now,
                        "outcome": firing.outcome,
                        "detail": detail,
                    }
                )
            if commands:
                # A newer command for an output supersedes the older one still waiting to be sent.
                pairs = list({(command["device"], command["command"]) for command in commands})
                for start in range(0, len(pairs), _CHUNK):
                    await session.execute(
                        update(DeviceCommand)
                        .where(
                            DeviceCommand.state == "queued",
                            tuple_(DeviceCommand.device, DeviceCommand.command).in_(pairs[start : start + _CHUNK]),
                        )
                        .values(state="superseded", finished_at=now)
                    )
                await session.execute(insert(DeviceCommand), commands)
            await session.execute(insert(ScheduleFiring), rows)
            await session.commit()
        if commands:
            self.commands.notify()
        return new

    def _commands(self, firing: Firing, now: datetime, requested_by: str) -> tuple[list[dict[str, Any]], list[str]]:
        made: list[dict[str, Any]] = []
        problems: list[str] = []
        for output in self.outputs.get(firing.zone, []):
            try:
                action, arguments = device_action(
                    self.inventory, output, firing.action, firing.level, firing.programme, firing.duration_s
                )
                self.commands.check(output.device, output.command, action, arguments)
            except (ZoneActionError, ValueError) as exc:
                problems.append(str(exc))
                log.warning("zone %s: %s not sent to %s: %s", firing.zone, firing.action, output.device, exc)
                continue
            made.append(
                {
                    "device": output.device,
                    "command": output.command,
                    "action": action,
                    "state": "queued",
                    "source": firing.cause.split(":", 1)[0][:16],
                    "reason": f"zone {firing.zone}: {firing.cause}",
                    "requested_by": requested_by[:64],
                    "key": _command_key(firing.key, output),
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "last_error": "",
                    "arguments": arguments or None,
                    "correlation_id": hashlib.sha256(f"{firing.key}|{output}".encode()).hexdigest()[:32],
                    "deadline": firing.deadline,
                    "zone": firing.zone,
                }
            )
        return made, problems


def override_firing(
    zone: str, override_id: int, action: str, level: int | None, starts_at: datetime, deadline: datetime
) -> Firing:
    """An override takes effect when it is made; the scheduler computes the same firing (same key)."""
    return Firing(
        zone, f"override:{override_id}", action, starts_at, detail="manual override", level=level, deadline=deadline
    )


def emergency_start(zone: str, emergency_id: int, programme: str, starts_at: datetime, until: datetime) -> Firing:
    seconds = max(1, round((until - starts_at).total_seconds()))
    return Firing(
        zone,
        f"emergency:{emergency_id}",
        "play",
        starts_at,
        detail="emergency broadcast",
        programme=programme,
        duration_s=seconds,
        deadline=until,
    )


def emergency_end(zone: str, emergency_id: int, ends_at: datetime, deadline: datetime) -> Firing:
    return Firing(
        zone, f"emergency:{emergency_id}:end", "stop", ends_at, detail="emergency broadcast ended", deadline=deadline
    )
