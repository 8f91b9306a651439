"""The ``anomaly`` condition: today's use so far against the same hours of the previous days.

Use is read from the telemetry store (the last value of the cumulative field per hour, as for a room's
usage), over whole local hours: from local midnight to the start of the current hour, today and on each
of the previous ``days`` days. At least half of those days must have data, or there is no verdict.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from houqin.telemetry import TelemetryStore
from houqin.telemetry.usage import energy_usage
from rules.conditions import Verdict, Watch
from rules.model import Anomaly

HOUR = timedelta(hours=1)


async def judge_anomaly(
    watch: Watch, store: TelemetryStore, measurement: str, now: datetime, timezone: ZoneInfo
) -> Verdict | None:
    condition = watch.rule.condition
    assert isinstance(condition, Anomaly)
    local = now.astimezone(timezone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    hours = int((local.replace(minute=0, second=0, microsecond=0) - midnight) / HOUR)
    if hours < 1:
        return None  # nothing of today to compare yet
    boundaries = []
    for back in range(condition.days, -1, -1):
        start = (midnight - timedelta(days=back)).astimezone(now.tzinfo)
        boundaries += [start, start + hours * HOUR]
    windows = await energy_usage(store, watch.device.id, boundaries, now, condition.field, measurement)
    spans = [window.kwh for window in windows[0::2]]  # every other window: the gaps between spans are not use
    today, previous = spans[-1], [use for use in spans[:-1] if use is not None]
    if today is None or len(previous) < (condition.days + 1) // 2:
        return None
    baseline = max(statistics.median(previous), condition.min_usage)
    return Verdict(bad=today > condition.factor * baseline, good=today <= condition.factor * baseline, value=today)
