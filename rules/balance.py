"""The ``balance`` condition: a meter against the meters hanging from it, over the last whole local days.

Each meter's use is the advance of its cumulative register (the same windows the energy report uses), so
the rule and the energy page agree. A day any of them was not read gives no verdict: a silent sub-meter
must not read as theft (the offline rule reports it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from houqin.inventory import Inventory
from houqin.telemetry import TelemetryStore
from houqin.telemetry.usage import UsageWindow, energy_usage
from rules.conditions import Verdict, Watch
from rules.model import Balance


async def judge_balance(
    watch: Watch, store: TelemetryStore, inventory: Inventory, measurement: str, now: datetime, timezone: ZoneInfo
) -> Verdict | None:
    condition = watch.rule.condition
    assert isinstance(condition, Balance)
    midnight = now.astimezone(timezone).replace(hour=0, minute=0, second=0, microsecond=0)
    boundaries = [(midnight - timedelta(days=back)).astimezone(now.tzinfo) for back in range(condition.days, -1, -1)]
    children = [device.id for device in inventory.devices.values() if device.parent == watch.device.id]

    async def use(meter: str) -> float | None:
        windows: list[UsageWindow] = await energy_usage(store, meter, boundaries, now, condition.field, measurement)
        if any(window.kwh is None or not window.read for window in windows):
            return None
        return sum(window.kwh or 0.0 for window in windows)

    parent = await use(watch.device.id)
    if parent is None or parent < condition.min_usage or not children:
        return None
    below = [await use(child) for child in children]
    if None in below:
        return None
    share = (parent - sum(b for b in below if b is not None)) / parent
    return Verdict(bad=share > condition.share, good=share <= condition.share, value=round(share * 100, 1))
