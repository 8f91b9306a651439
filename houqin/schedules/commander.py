"""Turns what a zone should do into rows: a firing record and one command per output, in one transaction.

A dorm-power zone has no outputs of its own: its firing puts its rooms under curfew, ends it, or sets
their night limit through the power policy (``Curfew.apply``), in the same transaction as the record,
so a room's relay moves only where no other reason (money, a lock, a trip) holds it.

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
from functools import cached_property

from sqlalchemy.ext.asyncio import AsyncSession

from houqin.billing.curfew import Curfew
from houqin.commands import CommandQueue, CommandRequest, Handover
from houqin.inventory import Inventory
from houqin.schedules.zones import Output, ZoneActionError, device_action, zone_outputs
from houqin.store import Database
from houqin.store.keyed import insert_unless_keyed
from houqin.store.tables import CommandSource, FiringOutcome, ScheduleFiring

log = logging.getLogger(__name__)

_BATCH = 100  # firings per transaction
# A Core statement, not the ORM's bulk insert: hundreds of zones fire in the same second.
_INSERT_FIRING = insert_unless_keyed(ScheduleFiring.__table__, returning="key")  # type: ignore[arg-type]


@dataclass(frozen=True)
class Firing:
    """A zone action at a due time, and what became of it: ``fired``, ``missed`` or ``suppressed``."""

    zone: str
    cause: str
    action: str
    due: datetime
    outcome: FiringOutcome = FiringOutcome.FIRED
    detail: str = ""
    level: int | None = None
    programme: str | None = None
    duration_s: int | None = None
    deadline: datetime | None = None

    @cached_property
    def key(self) -> str:
        text = f"{self.zone}|{self.cause}|{self.due.astimezone(UTC).isoformat()}"
        return text if len(text) <= 160 else "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def source(self) -> CommandSource:
        """Whose commands these are, from the cause: ``schedule:…``, ``override:…``, ``emergency:…``, ``reconcile``."""
        return CommandSource(self.cause.split(":", 1)[0])


def _command_key(firing_key: str, output: Output) -> str:
    return "fire:" + hashlib.sha256(f"{firing_key}|{output.device}|{output.command}".encode()).hexdigest()[:60]


class ZoneCommander:
    def __init__(
        self, database: Database, inventory: Inventory, commands: CommandQueue, curfew: Curfew | None = None
    ) -> None:
        self.database = database
        self.inventory = inventory
        self.commands = commands
        self.curfew = curfew
        self.outputs = {zone.id: zone_outputs(inventory, zone) for zone in inventory.zones.values()}
        self.rooms = {zone.id: inventory.zone_rooms(zone) for zone in inventory.zones.values()}

    async def record(self, firings: Sequence[Firing], now: datetime, requested_by: str = "scheduler") -> list[Firing]:
        """Write the firings not written before and queue the commands of those that fired; the ones written.

        In batches, each its own transaction, committed and handed to the dispatchers before the next is
        written: when hundreds of zones fire together, the first lights switch while the last rows are still
        being written. A stop between batches loses nothing: the next pass finds the rest unwritten."""
        if not firings:
            return []
        unique = list({firing.key: firing for firing in firings}.values())
        written: list[Firing] = []
        queued: set[tuple[str, str, str, str]] = set()
        for start in range(0, len(unique), _BATCH):
            written += await self._record_batch(unique[start : start + _BATCH], now, requested_by, queued)
        return written

    async def _record_batch(
        self, firings: list[Firing], now: datetime, requested_by: str, queued: set[tuple[str, str, str, str]]
    ) -> list[Firing]:
        planned = {firing.key: self._plan(firing, now, requested_by) for firing in firings}
        async with self.commands.handover() as handover, self.database.session() as session:
            connection = await session.connection()
            # Written unless their key is there (a restart replaying its last second, two processes reacting
            # to one emergency): the keys that come back are the firings this call owns.
            rows = [{"key": firing.key, "zone": firing.zone, "cause": firing.cause, "action": firing.action,
                     "due_at": firing.due, "recorded_at": now, "outcome": firing.outcome,
                     "detail": planned[firing.key][1]} for firing in firings]  # fmt: skip
            inserted = await connection.execute(_INSERT_FIRING[connection.dialect.name], rows)
            written = {str(key) for key in inserted.scalars()}
            new = [firing for firing in firings if firing.key in written]
            commands: list[CommandRequest] = []
            for firing in new:
                for command in planned[firing.key][0]:
                    # A device in two zones fired together (the campus PA and the teaching bells) gets it once.
                    what = (command.device, command.command, command.action, repr(command.arguments))
                    if what not in queued:
                        queued.add(what)
                        commands.append(command)
            if commands:
                # Sent the moment this batch commits, by this process's dispatchers where they can.
                await handover.add(connection, commands, now)
            await self._room_power(session, new, now, handover)
            await session.commit()
            handover.committed()
        return new

    async def _room_power(
        self, session: AsyncSession, firings: list[Firing], now: datetime, handover: Handover
    ) -> None:
        """Apply the dorm-power firings among ``firings``: their rooms' commands go out when the batch commits."""
        for firing in firings:
            rooms = self.rooms.get(firing.zone)
            if not rooms or firing.outcome != FiringOutcome.FIRED or self.curfew is None:
                continue
            # Command keys are bounded: the firing's own key may be up to 160 characters.
            key = hashlib.sha256(firing.key.encode()).hexdigest()[:40]
            changed = await self.curfew.apply(session, rooms, firing.action, firing.level, now, key, handover)
            log.info("zone %s: %s (%s): %d of %d rooms switched", firing.zone, firing.action, firing.cause,
                     len(changed), len(rooms))  # fmt: skip

    def _plan(self, firing: Firing, now: datetime, requested_by: str) -> tuple[list[CommandRequest], str]:
        """The commands a firing queues (none unless it fired) and its detail, with any output it cannot drive."""
        if firing.outcome != FiringOutcome.FIRED:
            return [], firing.detail
        if self.rooms.get(firing.zone) and self.curfew is None:
            return [], "; ".join(filter(None, [firing.detail, "no power policy here to switch the rooms"]))
        made, problems = self._commands(firing, now, requested_by)
        return made, "; ".join(filter(None, [firing.detail, *problems]))

    def _commands(self, firing: Firing, now: datetime, requested_by: str) -> tuple[list[CommandRequest], list[str]]:
        made: list[CommandRequest] = []
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
                CommandRequest(
                    output.device, output.command, action, firing.source, reason=f"zone {firing.zone}: {firing.cause}",
                    requested_by=requested_by, key=_command_key(firing.key, output), arguments=arguments or None,
                    deadline=firing.deadline, zone=firing.zone,
                    correlation_id=hashlib.sha256(f"{firing.key}|{output}".encode()).hexdigest()[:32],
                )
            )  # fmt: skip
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
