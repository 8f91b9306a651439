"""The ``balance`` condition: a meter against the meters hanging from it, over the last whole local days.

Each meter's use is the advance of its cumulative register (the same windows the energy report uses), so
the rule and the energy page agree. A day any of them was not read gives no verdict: a silent sub-meter
must not read as theft (the offline rule reports it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from houqin.energy.report import MeteredUse, tree_balance
from houqin.inventory import Inventory
from houqin.telemetry import TelemetryStore
from houqin.telemetry.usage import energy_usages
from rules.conditions import Verdict, Watch
from rules.model import Balance


async def judge_balance(
    watch: Watch, store: TelemetryStore, inventory: Inventory, measurement: str, now: datetime, timezone: ZoneInfo
) -> Verdict | None:
    condition = watch.rule.condition
    assert isinstance(condition, Balance)
    midnight = now.astimezone(timezone).replace(hour=0, minute=0, second=0, microsecond=0)
    boundaries = [(midnight - timedelta(days=back)).astimezone(now.tzinfo) for back in range(condition.days, -1, -1)]
    parent = watch.device
    family = [parent, *(device for device in inventory.devices.values() if device.parent == parent.id)]
    usages = await energy_usages(store, [device.id for device in family], boundaries, now, condition.field, measurement)
    uses = [MeteredUse(device.id, device.building, "", device.parent if device is not parent else None,
                       usages[device.id]) for device in family]  # fmt: skip
    # The same arithmetic as the energy page's balance, so the rule and the page agree.
    balances = tree_balance(uses, now)
    if not balances:
        return None  # no sub-meter
    balance = balances[0]
    if not balance.complete or balance.parent_total < condition.min_usage or balance.share is None:
        return None
    return Verdict(bad=balance.share > condition.share, good=balance.share <= condition.share,
                   value=round(balance.share * 100, 1))  # fmt: skip
