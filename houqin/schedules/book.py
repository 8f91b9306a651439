"""The schedules domain in the SQL store: calendar, schedules, overrides, emergency broadcasts, firings.

Every change is validated before it is written (unknown zone, contradictory entries, a dim on a circuit
that cannot dim) and tells the scheduler of this process to plan again at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from houqin.config_file import ConfigError, ConfigIssue, load_document, validate_items
from houqin.inventory import Inventory
from houqin.inventory.model import Zone
from houqin.schedules.calendar import CalendarImport, SchoolCalendar, SpecialDay, Term
from houqin.schedules.model import ScheduleIn, contradictions
from houqin.schedules.timeline import Emergency, Override, ScheduleRow, ZoneTimeline
from houqin.schedules.zones import ZoneActionError, check_zone_action
from houqin.store import Database
from houqin.store.tables import (
    CalendarDay,
    CalendarTerm,
    EmergencyBroadcast,
    Schedule,
    ScheduleFiring,
    ZoneOverride,
)


class ScheduleInvalidError(ValueError):
    """A schedule that cannot be stored; ``problems`` says every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class ScheduleConflictError(ValueError):
    """A schedule name already taken."""


@dataclass(frozen=True)
class ZoneDrivers:
    """Everything that drives zones in a window, loaded in one go."""

    calendar: SchoolCalendar
    schedules: dict[str, list[ScheduleRow]]
    overrides: dict[str, list[Override]]
    emergencies: dict[str, list[Emergency]]


class ScheduleBook:
    def __init__(self, database: Database, inventory: Inventory, tz: ZoneInfo) -> None:
        self.database = database
        self.inventory = inventory
        self.tz = tz
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        for listener in self._listeners:
            listener()

    def zone(self, zone_id: str) -> Zone:
        zone = self.inventory.zones.get(zone_id)
        if zone is None:
            known = ", ".join(sorted(self.inventory.zones)) or "none"
            raise KeyError(f"no zone {zone_id!r}; zones: {known}")
        return zone

    # --- calendar ---------------------------------------------------------------------------------------

    async def calendar(self) -> SchoolCalendar:
        async with self.database.session() as session:
            terms = [
                Term(row.name, row.start, row.end) for row in (await session.execute(select(CalendarTerm))).scalars()
            ]
            days = {
                row.day: SpecialDay(row.day, row.day_type, row.follows, row.note)
                for row in (await session.execute(select(CalendarDay))).scalars()
            }
        return SchoolCalendar(terms, days)

    async def import_calendar(self, content: CalendarImport) -> None:
        """Add or replace the file's terms (by name) and days (by date); what it does not name stays."""
        async with self.database.session() as session:
            for term in content.terms:
                row = (await session.execute(select(CalendarTerm).where(CalendarTerm.name == term.name))).scalar()
                if row is None:
                    session.add(CalendarTerm(name=term.name, start=term.start, end=term.end))
                else:
                    row.start, row.end = term.start, term.end
            for special in content.days:
                await self._put_day(session, special)
            await session.commit()
        self.changed()

    async def _put_day(self, session: Any, special: SpecialDay) -> None:
        row = await session.get(CalendarDay, special.day)
        if row is None:
            session.add(
                CalendarDay(day=special.day, day_type=special.day_type, follows=special.follows, note=special.note)
            )
        else:
            row.day_type, row.follows, row.note = special.day_type, special.follows, special.note

    async def set_day(self, special: SpecialDay) -> None:
        async with self.database.session() as session:
            await self._put_day(session, special)
            await session.commit()
        self.changed()

    async def clear_day(self, day: date) -> bool:
        async with self.database.session() as session:
            result = await session.execute(delete(CalendarDay).where(CalendarDay.day == day))
            await session.commit()
        self.changed()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def delete_term(self, name: str) -> bool:
        async with self.database.session() as session:
            result = await session.execute(delete(CalendarTerm).where(CalendarTerm.name == name))
            await session.commit()
        self.changed()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- schedules --------------------------------------------------------------------------------------

    def problems(self, spec: ScheduleIn) -> list[str]:
        zone = self.inventory.zones.get(spec.zone)
        if zone is None:
            return [f"zone: no zone {spec.zone!r}; zones: {', '.join(sorted(self.inventory.zones)) or 'none'}"]
        problems = contradictions(spec, zone.kind)
        if not problems and any(entry.action == "dim" for entry in spec.entries):
            try:
                check_zone_action(self.inventory, zone, "dim")
            except ZoneActionError as exc:
                problems.append(f"dim: {exc}")
        follows_sun = any(text.startswith("sun") for entry in spec.entries for text in (entry.at, entry.until or ""))
        site = self.inventory.site
        if follows_sun and (site.latitude is None or site.longitude is None):
            problems.append("entries: sunrise/sunset need the site's latitude and longitude in the inventory")
        return problems

    async def schedules(self, zone: str | None = None) -> list[Schedule]:
        async with self.database.session() as session:
            query = select(Schedule).order_by(Schedule.id)
            if zone is not None:
                query = query.where(Schedule.zone == zone)
            return list((await session.execute(query)).scalars())

    async def schedule(self, schedule_id: int) -> Schedule | None:
        async with self.database.session() as session:
            return await session.get(Schedule, schedule_id)

    async def save(self, spec: ScheduleIn, by: str, now: datetime, schedule_id: int | None = None) -> Schedule:
        """Create (``schedule_id`` None) or replace a schedule. Raises ``ScheduleInvalidError``,
        ``ScheduleConflictError``, or ``KeyError`` for an unknown id."""
        problems = self.problems(spec)
        if problems:
            raise ScheduleInvalidError(problems)
        entries = [entry.model_dump(mode="json", exclude_defaults=True) for entry in spec.entries]
        async with self.database.session() as session:
            if schedule_id is None:
                row = Schedule(
                    name=spec.name,
                    zone=spec.zone,
                    day_types=list(spec.day_types),
                    entries=entries,
                    enabled=spec.enabled,
                    updated_at=now,
                    updated_by=by,
                )
                session.add(row)
            else:
                found = await session.get(Schedule, schedule_id)
                if found is None:
                    raise KeyError(f"no schedule {schedule_id}")
                row = found
                row.name, row.zone, row.day_types, row.entries = spec.name, spec.zone, list(spec.day_types), entries
                row.enabled, row.updated_at, row.updated_by = spec.enabled, now, by
            try:
                await session.commit()
            except IntegrityError:
                raise ScheduleConflictError(f"a schedule named {spec.name!r} exists") from None
            except StaleDataError:  # a DELETE committed between reading the row and writing it back
                raise ScheduleConflictError(f"schedule {schedule_id} was deleted while it was being changed") from None
        self.changed()
        return row

    async def delete(self, schedule_id: int) -> bool:
        async with self.database.session() as session:
            result = await session.execute(delete(Schedule).where(Schedule.id == schedule_id))
            await session.commit()
        self.changed()
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def seed(self, specs: Sequence[ScheduleIn], by: str, now: datetime) -> tuple[int, int]:
        """Create or replace schedules by name; (created, replaced)."""
        existing = {row.name: row.id for row in await self.schedules()}
        created = replaced = 0
        for spec in specs:
            await self.save(spec, by, now, existing.get(spec.name))
            if spec.name in existing:
                replaced += 1
            else:
                created += 1
        return created, replaced

    # --- overrides and emergencies ----------------------------------------------------------------------

    async def start_override(
        self, zone: Zone, action: str, level: int | None, until: datetime, by: str, reason: str, now: datetime
    ) -> ZoneOverride:
        """A new override replaces the zone's active one."""
        async with self.database.session() as session:
            await self._end_overrides(session, zone.id, by, now)
            row = ZoneOverride(
                zone=zone.id, action=action, level=level, starts_at=now, until=until, requested_by=by, reason=reason
            )
            session.add(row)
            await session.commit()
        self.changed()
        return row

    async def _end_overrides(self, session: Any, zone: str, by: str, now: datetime) -> int:
        rows = (
            await session.execute(
                select(ZoneOverride).where(
                    ZoneOverride.zone == zone, ZoneOverride.ended_at.is_(None), ZoneOverride.until > now
                )
            )
        ).scalars()
        count = 0
        for row in rows:
            row.ended_at, row.ended_by = now, by
            count += 1
        return count

    async def end_override(self, zone: str, by: str, now: datetime) -> bool:
        async with self.database.session() as session:
            ended = await self._end_overrides(session, zone, by, now)
            await session.commit()
        self.changed()
        return ended > 0

    async def start_emergency(
        self, zones: Sequence[str], programme: str, until: datetime, by: str, reason: str, now: datetime
    ) -> EmergencyBroadcast:
        async with self.database.session() as session:
            row = EmergencyBroadcast(
                zones=list(zones), programme=programme, starts_at=now, until=until, requested_by=by, reason=reason
            )
            session.add(row)
            await session.commit()
        self.changed()
        return row

    async def end_emergency(self, emergency_id: int, by: str, now: datetime) -> EmergencyBroadcast | None:
        async with self.database.session() as session:
            row = await session.get(EmergencyBroadcast, emergency_id)
            if row is None:
                return None
            if row.ended_at is None and row.until > now:
                row.ended_at, row.ended_by = now, by
            await session.commit()
        self.changed()
        return row

    async def emergencies(self, since: datetime) -> list[EmergencyBroadcast]:
        async with self.database.session() as session:
            query = select(EmergencyBroadcast).where(EmergencyBroadcast.until > since).order_by(EmergencyBroadcast.id)
            return list((await session.execute(query)).scalars())

    async def overrides(self, since: datetime) -> list[ZoneOverride]:
        async with self.database.session() as session:
            query = select(ZoneOverride).where(ZoneOverride.until > since).order_by(ZoneOverride.id)
            return list((await session.execute(query)).scalars())

    # --- timelines --------------------------------------------------------------------------------------

    async def drivers(self, since: datetime) -> ZoneDrivers:
        calendar = await self.calendar()
        schedules: dict[str, list[ScheduleRow]] = {}
        for row in await self.schedules():
            try:
                spec = ScheduleIn.model_validate(
                    {
                        "name": row.name,
                        "zone": row.zone,
                        "day_types": row.day_types,
                        "enabled": row.enabled,
                        "entries": row.entries,
                    }
                )
            except ValidationError:
                continue  # stored before a stricter rule: shown by the API, not run
            schedules.setdefault(row.zone, []).append(ScheduleRow(row.id, spec))
        overrides: dict[str, list[Override]] = {}
        for override in await self.overrides(since):
            end = min(override.until, override.ended_at) if override.ended_at else override.until
            overrides.setdefault(override.zone, []).append(
                Override(override.id, override.action, override.level, override.starts_at, end)
            )
        emergencies: dict[str, list[Emergency]] = {}
        for emergency in await self.emergencies(since):
            end = min(emergency.until, emergency.ended_at) if emergency.ended_at else emergency.until
            for zone in emergency.zones:
                emergencies.setdefault(zone, []).append(
                    Emergency(emergency.id, emergency.programme, emergency.starts_at, end)
                )
        return ZoneDrivers(calendar, schedules, overrides, emergencies)

    def with_draft(self, drivers: ZoneDrivers, draft: ScheduleIn, replaces: int | None) -> ZoneDrivers:
        """``drivers`` as they would be with ``draft`` saved (in place of schedule ``replaces``, if given):
        what staff preview before saving a change. Raises ``ScheduleInvalidError`` as ``save`` would."""
        problems = self.problems(draft)
        if problems:
            raise ScheduleInvalidError(problems)
        schedules = {zone: [row for row in rows if row.id != replaces] for zone, rows in drivers.schedules.items()}
        schedules.setdefault(draft.zone, []).append(ScheduleRow(replaces or 0, draft))
        return ZoneDrivers(drivers.calendar, schedules, drivers.overrides, drivers.emergencies)

    def timeline(self, drivers: ZoneDrivers, zone: Zone, start: datetime, end: datetime) -> ZoneTimeline:
        return ZoneTimeline(
            zone,
            drivers.schedules.get(zone.id, []),
            drivers.calendar,
            self.inventory.site,
            self.tz,
            start,
            end,
            drivers.overrides.get(zone.id, []),
            drivers.emergencies.get(zone.id, []),
        )

    async def firings(
        self, zone: str | None, since: datetime | None, until: datetime | None, limit: int = 200
    ) -> list[ScheduleFiring]:
        async with self.database.session() as session:
            query = select(ScheduleFiring).order_by(ScheduleFiring.due_at.desc(), ScheduleFiring.id.desc()).limit(limit)
            if zone is not None:
                query = query.where(ScheduleFiring.zone == zone)
            if since is not None:
                query = query.where(ScheduleFiring.due_at >= since)
            if until is not None:
                query = query.where(ScheduleFiring.due_at < until)
            return list((await session.execute(query)).scalars())


def load_schedule_file(path: Path) -> list[ScheduleIn]:
    """Schedules from a YAML seed file (``schedules: [...]``); every mistake named by line and field."""
    document = load_document(path)
    if document.issues:
        raise ConfigError(document.issues)
    if not isinstance(document.data, dict) or "schedules" not in document.data:
        raise ConfigError([ConfigIssue(document.file, 1, "", "a schedule file is a mapping with a schedules list")])
    good, issues = validate_items(document, "schedules", ScheduleIn)
    names: dict[str, int] = {}
    for index, spec in good:
        if spec.name in names:
            issues.append(
                document.issue(("schedules", index, "name"), f"{spec.name!r} is also schedules[{names[spec.name]}]")
            )
        names.setdefault(spec.name, index)
    if issues:
        raise ConfigError(issues)
    return [spec for _, spec in good]
