"""Condition evaluation: what each kind of condition concludes from a reading or from the passing of time,
and the debounce that turns those conclusions into fault transitions.

A ``Watch`` is one rule on one device. It keeps only what its condition needs (the last value, when it last
changed, when the device was last heard, a baseline), so ten thousand devices cost little memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from houqin.daily_span import within
from houqin.inventory.model import Device
from houqin.readings import FieldValue, as_number
from rules.model import (
    HISTORY_CONDITIONS,
    Expectation,
    Mismatch,
    NightFlow,
    Offline,
    PowerStep,
    Rule,
    Stuck,
    Threshold,
)


@dataclass(frozen=True)
class Verdict:
    bad: bool  # the fault condition holds
    good: bool  # the clear condition holds (not simply "not bad": hysteresis)
    value: float | None = None
    since: datetime | None = None  # when the condition began, if earlier than now (stuck, offline)


class Transition(Enum):
    BEGIN = "begin"  # ok -> pending
    ACTIVATE = "activate"  # pending -> active
    DISCARD = "discard"  # pending -> ok: it did not last
    CLEAR = "clear"  # active -> ok


@dataclass
class Watch:
    rule: Rule
    device: Device
    phase: str = "ok"  # ok | pending | active
    fault_id: int | None = None
    bad_since: datetime | None = None
    good_since: datetime | None = None
    value: float | None = None
    fields: dict[str, FieldValue] = field(default_factory=dict)  # the last reading, for titles
    # condition state
    next_check: datetime | None = None  # anomaly: when to look at the history again
    last: FieldValue | None = None
    last_change: datetime | None = None
    last_seen: datetime | None = None
    baseline: float | None = None

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=getattr(self.rule.condition, "duration", 0.0))

    @property
    def clear_for(self) -> timedelta:
        return timedelta(seconds=self.rule.condition.clear_for)

    def step(self, verdict: Verdict, now: datetime) -> list[Transition]:
        """Advance the debounce by one verdict made at ``now``."""
        if verdict.value is not None:
            self.value = verdict.value
        if self.phase == "ok":
            if not verdict.bad:
                return []
            self.phase, self.bad_since = "pending", verdict.since or now
            if now - self.bad_since >= self.duration:
                self.phase, self.good_since = "active", None
                return [Transition.BEGIN, Transition.ACTIVATE]
            return [Transition.BEGIN]
        if self.phase == "pending":
            if not verdict.bad:
                self.phase, self.bad_since = "ok", None
                return [Transition.DISCARD]
            assert self.bad_since is not None
            if now - self.bad_since >= self.duration:
                self.phase, self.good_since = "active", None
                return [Transition.ACTIVATE]
            return []
        if not verdict.good:
            self.good_since = None
            return []
        self.good_since = self.good_since or now
        if now - self.good_since >= self.clear_for:
            self.phase, self.bad_since, self.good_since = "ok", None, None
            return [Transition.CLEAR]
        return []


def _holds(test: Expectation, fields: Mapping[str, FieldValue]) -> bool | None:
    value = fields.get(test.field)
    if value is None:
        return None
    if test.equals is not None:
        return value == test.equals
    number = as_number(value)
    if number is None:
        return None
    return number > test.above if test.above is not None else number < (test.below or 0.0)


def _in_window(moment: datetime, start: time, end: time, timezone: ZoneInfo) -> bool:
    # A rule's window with equal ends is empty (unlike a tariff period's, which is the whole day).
    return start != end and within(moment.astimezone(timezone).time(), start, end)


def fields_of(rule: Rule) -> set[str]:
    """The fields a device must report for the rule to apply to it."""
    condition = rule.condition
    if isinstance(condition, Mismatch):
        return {condition.when.field, condition.expect.field}
    if isinstance(condition, Offline):
        return set()
    return {condition.field}


def observe(watch: Watch, fields: Mapping[str, FieldValue], ts: datetime, timezone: ZoneInfo) -> Verdict | None:
    """The condition's verdict on a new reading, or None when the reading says nothing about it."""
    condition = watch.rule.condition
    watch.last_seen = ts
    if isinstance(condition, Offline):
        return Verdict(bad=False, good=True)
    if isinstance(condition, HISTORY_CONDITIONS):
        return None  # judged from the stored history on the engine's clock, not reading by reading
    if isinstance(condition, Mismatch):
        when = _holds(condition.when, fields)
        expected = _holds(condition.expect, fields)
        if when is None or expected is None:
            return None
        bad = when and not expected
        return Verdict(bad=bad, good=not bad, value=as_number(fields.get(condition.expect.field)))
    value = fields.get(condition.field)
    if value is None:
        return None
    number = as_number(value)
    if isinstance(condition, Stuck):
        if watch.last is None or value != watch.last:
            watch.last, watch.last_change = value, ts
            return Verdict(bad=False, good=True, value=number)
        return Verdict(bad=True, good=False, value=number, since=watch.last_change)
    if number is None:
        return None
    if isinstance(condition, Threshold):
        if condition.below is not None:
            clear = condition.clear if condition.clear is not None else condition.below
            return Verdict(bad=number < condition.below, good=number >= clear, value=number)
        assert condition.above is not None
        clear = condition.clear if condition.clear is not None else condition.above
        return Verdict(bad=number > condition.above, good=number <= clear, value=number)
    if isinstance(condition, NightFlow):
        inside = _in_window(ts, condition.window.start, condition.window.end, timezone)
        clear = condition.clear if condition.clear is not None else condition.above
        return Verdict(bad=inside and number > condition.above, good=number <= clear, value=number)
    if isinstance(condition, PowerStep):
        previous, watch.last = as_number(watch.last), number
        if watch.phase == "ok":
            if previous is not None and number - previous >= condition.rise:
                watch.baseline = previous
                return Verdict(bad=True, good=False, value=number)
            return Verdict(bad=False, good=True, value=number)
        baseline = watch.baseline if watch.baseline is not None else 0.0
        # Staying up means most of the step is still drawn; gone means at most half of it is.
        return Verdict(bad=number >= baseline + 0.8 * condition.rise,
                       good=number < baseline + 0.5 * condition.rise, value=number)  # fmt: skip
    raise AssertionError(f"unhandled condition {condition!r}")


def silence_limit(watch: Watch) -> timedelta:
    """How long an ``offline`` watch's device may go unheard."""
    condition = watch.rule.condition
    assert isinstance(condition, Offline)
    if condition.intervals is not None:
        return timedelta(seconds=condition.intervals * watch.device.poll_interval)
    return timedelta(seconds=condition.after if condition.after is not None else 0.0)


def elapse(watch: Watch, now: datetime) -> Verdict | None:
    """The verdict the passing of time gives (no reading came): only ``offline`` has one."""
    condition = watch.rule.condition
    if not isinstance(condition, Offline) or watch.last_seen is None:
        return None
    limit = silence_limit(watch)
    if now - watch.last_seen > limit:
        return Verdict(bad=True, good=False, since=watch.last_seen + limit)
    return None
