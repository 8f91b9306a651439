"""What a zone should be doing, and why, over a stretch of time: the one place precedence is decided.

Precedence, highest first:

1. an **emergency broadcast** (broadcast zones): plays above everything; scheduled programmes that fall
   inside it are suppressed, and one it interrupts does not resume;
2. a **manual override** until its expiry (lighting: on / off / dim; broadcast: silence);
3. **one-off dated entries** (entries with ``dates``): on their date they sit above the regular
   timetable — a dated state holds until the next dated entry or the end of that day; a regular
   programme that would play inside a dated one is suppressed;
4. the **regular schedules** of the day's type and timetable weekday; a lighting state holds until the
   next entry, across days;
5. the zone's **default** (lighting: ``default`` in the inventory, else off; broadcast: silent).

Within a layer, an entry with ``until`` holds its state over its span and the layer's point entries show
through again at its end; of two spans, the later started wins.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from houqin.inventory.model import Site, Zone
from houqin.schedules.calendar import SchoolCalendar
from houqin.schedules.model import At, EntryIn, ScheduleIn, entry_state

Layer = Literal["emergency", "override", "dated", "regular", "default"]
LAYERS: tuple[Layer, ...] = ("emergency", "override", "dated", "regular", "default")  # highest first
LOOKBACK_DAYS = 8  # a regular lighting state carries over from the last entry up to this far back


@dataclass(frozen=True)
class LightState:
    """The state a lighting or dorm-power zone holds: on, off, dim (``level`` %) or limit (``level`` W)."""

    action: str  # on | off | dim | limit
    level: int | None = None

    def __str__(self) -> str:
        if self.action == "limit":
            return f"limit {self.level} W"
        return f"dim {self.level}%" if self.action == "dim" else self.action


@dataclass(frozen=True)
class Segment:
    """The zone holds ``state`` from ``start`` to ``end`` because of ``cause`` in ``layer``."""

    start: datetime
    end: datetime
    state: LightState
    layer: Layer
    cause: str


@dataclass(frozen=True)
class Sound:
    """A programme a broadcast zone plays (or a stop), and whether a higher layer suppresses it."""

    start: datetime
    end: datetime
    action: str  # play | stop
    programme: str | None
    layer: Layer
    cause: str
    suppressed_by: str | None = None
    play_if_missed: bool = False


@dataclass(frozen=True)
class Override:
    id: int
    action: str  # on | off | dim | stop (silence)
    level: int | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Emergency:
    id: int
    programme: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class _Point:
    at: datetime
    state: LightState
    cause: str
    holds_until: datetime | None = None  # dated points stop at the end of their day


@dataclass(frozen=True)
class _Span:
    start: datetime
    end: datetime
    state: LightState
    cause: str


@dataclass
class _Layer:
    points: list[_Point] = field(default_factory=list)
    spans: list[_Span] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)  # the points' times, for bisecting

    def seal(self) -> None:
        """Entries are all added: order the points (asked hundreds of times a pass, never changed)."""
        self.points.sort(key=lambda point: point.at)
        self.times = [point.at for point in self.points]

    def state_at(self, moment: datetime) -> tuple[LightState, str] | None:
        covering = [span for span in self.spans if span.start <= moment < span.end]
        if covering:
            span = max(covering, key=lambda span: span.start)
            return span.state, span.cause
        index = bisect.bisect_right(self.times, moment) - 1
        if index < 0:
            return None
        point = self.points[index]
        if point.holds_until is not None and moment >= point.holds_until:
            return None
        return point.state, point.cause

    def edges(self) -> list[datetime]:
        times = [point.at for point in self.points] + [p.holds_until for p in self.points if p.holds_until]
        for span in self.spans:
            times += [span.start, span.end]
        return times


@dataclass(frozen=True)
class ScheduleRow:
    id: int
    spec: ScheduleIn


def _applies(entry: EntryIn, schedule: ScheduleIn, day: date, calendar: SchoolCalendar) -> bool:
    if entry.dates is not None:
        return day in entry.dates
    resolved = calendar.resolve(day)
    if resolved.day_type not in schedule.day_types:
        return False
    return entry.weekdays is None or resolved.weekday_name in entry.weekdays


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


class ZoneTimeline:
    """Everything that drives one zone, evaluated on demand for any moment in a window. Built once per
    plan and not changed after: its edges and segments are worked out once, on first use."""

    def __init__(
        self,
        zone: Zone,
        schedules: Sequence[ScheduleRow],
        calendar: SchoolCalendar,
        site: Site,
        tz: ZoneInfo,
        start: datetime,
        end: datetime,
        overrides: Sequence[Override] = (),
        emergencies: Sequence[Emergency] = (),
    ) -> None:
        self.zone = zone
        self.start, self.end = start, end
        self.tz = tz
        self.overrides = [o for o in overrides if o.end > o.start]
        self.emergencies = [e for e in emergencies if e.end > e.start]
        self._regular, self._dated = _Layer(), _Layer()
        self._sounds: list[Sound] = []
        first = start.astimezone(tz).date() - timedelta(days=LOOKBACK_DAYS if zone.holds_state else 1)
        last = end.astimezone(tz).date() + timedelta(days=1)
        day = first
        while day <= last:
            for row in schedules:
                if row.spec.enabled:
                    self._add_day(row, day, calendar, site)
            day += timedelta(days=1)
        for layer in (self._regular, self._dated):
            layer.seal()
        self._edge_list: list[datetime] | None = None
        self._segments: tuple[list[Segment], list[datetime]] | None = None
        if zone.kind == "broadcast":
            self._sounds = self._resolve_sounds()

    def _add_day(self, row: ScheduleRow, day: date, calendar: SchoolCalendar, site: Site) -> None:
        for index, entry in enumerate(row.spec.entries):
            if not _applies(entry, row.spec, day, calendar):
                continue
            moment = At.parse(entry.at).on(day, site, self.tz)
            if moment is None:
                continue
            cause = f"schedule:{row.id}#{index + 1}"
            dated = entry.dates is not None
            if self.zone.kind == "broadcast":
                end = moment + timedelta(seconds=entry.duration_s or 0)
                self._sounds.append(
                    Sound(
                        moment,
                        end,
                        entry.action,
                        entry.programme,
                        "dated" if dated else "regular",
                        cause,
                        play_if_missed=entry.play_if_missed,
                    )
                )
                continue
            layer = self._dated if dated else self._regular
            state = LightState(*entry_state(entry))
            if entry.until is not None:
                until = At.parse(entry.until).on(day, site, self.tz)
                if until is not None and until <= moment:
                    until = At.parse(entry.until).on(day + timedelta(days=1), site, self.tz)
                if until is not None:
                    layer.spans.append(_Span(moment, until, state, cause))
                continue
            holds_until = _local_midnight(day + timedelta(days=1), self.tz) if dated else None
            layer.points.append(_Point(moment, state, cause, holds_until))

    # --- lighting ---------------------------------------------------------------------------------------

    def state_at(self, moment: datetime) -> tuple[LightState, Layer, str]:
        """The state the zone should hold at ``moment``, the layer that decides it, and the cause."""
        covering = [o for o in self.overrides if o.start <= moment < o.end]
        if covering:
            override = max(covering, key=lambda o: o.start)
            return LightState(override.action, override.level), "override", f"override:{override.id}"
        for name, layer in (("dated", self._dated), ("regular", self._regular)):
            found = layer.state_at(moment)
            if found is not None:
                return found[0], name, found[1]  # type: ignore[return-value]
        return LightState(self.zone.default), "default", "default"

    def _edges(self) -> list[datetime]:
        if self._edge_list is None:
            edges = self._regular.edges() + self._dated.edges()
            for override in self.overrides:
                edges += [override.start, override.end]
            self._edge_list = sorted({edge for edge in edges if self.start < edge < self.end})
        return self._edge_list

    def segments(self) -> list[Segment]:
        """The lighting timeline over the window, adjacent equal states merged."""
        return list(self._worked_segments()[0])

    def changed_at(self, moment: datetime) -> datetime | None:
        """When the state holding at ``moment`` began, or None if it already held when the window opened."""
        starts = self._worked_segments()[1]
        index = bisect.bisect_right(starts, moment) - 1
        return starts[index] if index > 0 else None

    def _worked_segments(self) -> tuple[list[Segment], list[datetime]]:
        """The segments and their starts (for bisecting), worked out on first use."""
        if self._segments is None:
            result: list[Segment] = []
            moments = [self.start, *self._edges()]
            for index, moment in enumerate(moments):
                end = moments[index + 1] if index + 1 < len(moments) else self.end
                state, layer, cause = self.state_at(moment)
                if result and result[-1].state == state and result[-1].cause == cause:
                    result[-1] = Segment(result[-1].start, end, state, layer, cause)
                else:
                    result.append(Segment(moment, end, state, layer, cause))
            self._segments = result, [segment.start for segment in result]
        return self._segments

    def next_change(self, after: datetime) -> datetime | None:
        """The first edge after ``after`` (where the state may change), inside the window."""
        edges = self._edges()
        index = bisect.bisect_right(edges, after)
        return edges[index] if index < len(edges) else None

    # --- broadcast --------------------------------------------------------------------------------------

    def _resolve_sounds(self) -> list[Sound]:
        dated = [sound for sound in self._sounds if sound.layer == "dated"]
        resolved: list[Sound] = []
        for sound in self._sounds:
            by: str | None = None
            for emergency in self.emergencies:
                if emergency.start <= sound.start < emergency.end:
                    by = f"emergency:{emergency.id}"
            if by is None:
                for override in self.overrides:
                    if override.start <= sound.start < override.end:
                        by = f"override:{override.id}"
            if by is None and sound.layer == "regular":
                for other in dated:
                    if other.start <= sound.start <= max(other.end, other.start):
                        by = other.cause
            resolved.append(_replace(sound, by))
        for emergency in self.emergencies:
            cause = f"emergency:{emergency.id}"
            resolved.append(Sound(emergency.start, emergency.end, "play", emergency.programme, "emergency", cause))
            # The emergency's end silences the zone, unless another emergency is still playing there.
            if not any(other.start <= emergency.end < other.end for other in self.emergencies if other != emergency):
                resolved.append(Sound(emergency.end, emergency.end, "stop", None, "emergency", cause + ":end"))
        return sorted(resolved, key=lambda sound: (sound.start, LAYERS.index(sound.layer)))

    def sounds(self) -> list[Sound]:
        """Programmes and stops starting inside the window, in order (suppressed ones included)."""
        return [sound for sound in self._sounds if self.start <= sound.start < self.end]


def _replace(sound: Sound, suppressed_by: str | None) -> Sound:
    return Sound(
        sound.start,
        sound.end,
        sound.action,
        sound.programme,
        sound.layer,
        sound.cause,
        suppressed_by,
        sound.play_if_missed,
    )
