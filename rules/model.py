"""The rule file schema: which devices a rule watches, what condition makes a fault, what it does then.

Every condition has a duration (``for``: how long it must hold before the fault is active) and a clear
condition with its own duration (``clear_for``), so a value hovering at the threshold does not open and
close faults all day.
"""

from __future__ import annotations

import re
import string
from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from houqin.inventory.model import DeviceKind, Ident

Seconds = Annotated[float, Field(ge=0, le=30 * 86400)]
Severity = Literal["info", "warning", "critical"]
Priority = Literal["urgent", "high", "normal", "low"]
# repair_order: open (or reopen) an order; cut_relay: cut the power of the device's room through the
# command queue (restored when the fault clears, unless restore is manual). An empty list only records
# the fault.
Action = Literal["repair_order", "cut_relay"]


class RuleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Selector(RuleEntry):
    """Devices a rule applies to: every given criterion must match (an empty selector matches all)."""

    kinds: list[DeviceKind] = Field(default_factory=list)
    models: list[Ident] = Field(default_factory=list)
    devices: list[Ident] = Field(default_factory=list)
    buildings: list[str] = Field(default_factory=list)
    tags: dict[Ident, str] = Field(default_factory=dict)
    has_fields: list[str] = Field(default_factory=list, description="only devices whose model reports these")


class Threshold(RuleEntry):
    """``field`` above or below a value for ``for`` seconds; clears past ``clear`` (default: the value)."""

    kind: Literal["threshold"]
    field: str
    above: float | None = None
    below: float | None = None
    duration: Seconds = Field(alias="for")
    clear: float | None = None
    clear_for: Seconds = 0.0

    @model_validator(mode="after")
    def _one_side(self) -> Threshold:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        if self.clear is not None:
            if self.above is not None and self.clear > self.above:
                raise ValueError(f"clear ({self.clear}) must not be above the threshold ({self.above})")
            if self.below is not None and self.clear < self.below:
                raise ValueError(f"clear ({self.clear}) must not be below the threshold ({self.below})")
        return self


class Offline(RuleEntry):
    """No reading for ``intervals`` poll intervals of the device, or for ``after`` seconds."""

    kind: Literal["offline"]
    intervals: float | None = Field(default=None, gt=0)
    after: Seconds | None = None
    clear_for: Seconds = 0.0

    @model_validator(mode="after")
    def _one_limit(self) -> Offline:
        if (self.intervals is None) == (self.after is None):
            raise ValueError("give exactly one of intervals or after")
        return self


class Stuck(RuleEntry):
    """``field`` keeps exactly the same value for ``for`` seconds while the device keeps reporting."""

    kind: Literal["stuck"]
    field: str
    duration: Seconds = Field(alias="for")
    clear_for: Seconds = 0.0


class DailyWindow(RuleEntry):
    start: time
    end: time  # may be before start: the window runs over midnight


class NightFlow(RuleEntry):
    """Flow above ``above`` continuously for ``for`` seconds inside a daily window (local time)."""

    kind: Literal["night_flow"]
    field: str = "flow"
    above: float
    duration: Seconds = Field(alias="for")
    window: DailyWindow
    clear: float | None = None
    clear_for: Seconds = 0.0


class Expectation(RuleEntry):
    field: str
    equals: bool | float | str | None = None
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Expectation:
        given = [x is not None for x in (self.equals, self.above, self.below)]
        if sum(given) != 1:
            raise ValueError("give exactly one of equals, above or below")
        return self


class Mismatch(RuleEntry):
    """While ``when`` holds, ``expect`` must hold too; a fault when it has not for ``for`` seconds
    (a relay commanded off still drawing power; a circuit switched on drawing no current)."""

    kind: Literal["mismatch"]
    when: Expectation
    expect: Expectation
    duration: Seconds = Field(alias="for")
    clear_for: Seconds = 0.0


class PowerStep(RuleEntry):
    """``field`` rises by at least ``rise`` between two readings and stays that high for ``for`` seconds."""

    kind: Literal["power_step"]
    field: str = "power"
    rise: float = Field(gt=0)
    duration: Seconds = Field(alias="for")
    clear_for: Seconds = 0.0


class Anomaly(RuleEntry):
    """Today's use so far (of a cumulative register, e.g. energy) above ``factor`` × the median use over the
    same hours of the previous ``days`` days. Checked every ``check_every`` seconds from the telemetry store."""

    kind: Literal["anomaly"]
    field: str = "energy"
    factor: float = Field(gt=1)
    days: int = Field(default=7, ge=2, le=60)
    min_usage: float = Field(default=0.5, ge=0, description="a baseline below this counts as this much")
    check_every: Seconds = 900.0
    duration: Seconds = Field(default=0.0, alias="for")
    clear_for: Seconds = 0.0


class Balance(RuleEntry):
    """A meter's use over the last ``days`` whole local days that the meters hanging from it do not account
    for, above ``share`` of it (losses, an unmetered load, a broken or missing sub-meter, theft). Judged
    only where every meter was read every day: a gap gives no verdict. Applies to meters with sub-meters."""

    kind: Literal["balance"]
    field: str = "energy"
    share: float = Field(gt=0, lt=1)
    days: int = Field(default=1, ge=1, le=31)
    min_usage: float = Field(default=10.0, ge=0, description="no verdict on a parent that used less than this")
    check_every: Seconds = 3600.0
    duration: Seconds = Field(default=0.0, alias="for")
    clear_for: Seconds = 0.0


# Conditions judged from the telemetry store on the engine's clock, not reading by reading.
HISTORY_CONDITIONS = (Anomaly, Balance)

Condition = Annotated[
    Threshold | Offline | Stuck | NightFlow | Mismatch | PowerStep | Anomaly | Balance, Field(discriminator="kind")
]


class RepairSpec(RuleEntry):
    category: Ident
    priority: Priority = "normal"


class Rule(RuleEntry):
    id: Ident
    description: str = ""
    select: Selector = Field(default_factory=Selector)
    condition: Condition
    severity: Severity = "warning"
    repair: RepairSpec
    title: str = Field(min_length=1, max_length=200)
    actions: list[Action] = Field(default_factory=lambda: list[Action](["repair_order"]))
    auto_resolve: bool = Field(default=False, description="resolve the order if the fault clears before work starts")
    restore: Literal["on_clear", "manual"] = Field(default="on_clear", description="cut_relay: when power returns")
    enabled: bool = True

    @field_validator("title")
    @classmethod
    def _title_template(cls, value: str) -> str:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(value) if name]
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from None
        for name in fields:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"placeholder {{{name}}} must be a plain name (a field or building, room, ...)")
        return value
