"""How dorm rooms are guarded against high-power appliances (恶性负载): an appliance policy applies to
the rooms it names, else the buildings it names, else the whole campus; the most specific wins. Without
one in the inventory, every room gets ``AppliancePolicy``'s defaults."""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field, model_validator

from houqin.inventory.entries import Entry, Ident, _between


class AllowedLoad(Entry):
    """A registered appliance the policy lets through: a step in ``[from_w, to_w]`` W is not tripped
    (a water dispenser heats at ~500 W: 350-700)."""

    name: str = Field(min_length=1)
    from_w: Annotated[float, _between(1, 100_000)]
    to_w: Annotated[float, _between(1, 100_000)]

    @model_validator(mode="after")
    def _band(self) -> AllowedLoad:
        if self.from_w >= self.to_w:
            raise ValueError(f"from_w {self.from_w:g} must be below to_w {self.to_w:g}")
        return self


class AppliancePolicy(Entry):
    """A room whose power rises by ``step_w`` or more over where it stood, with a resistive signature
    (power factor at least ``min_power_factor`` where the meter reports one), for ``hold_s`` seconds is
    tripped at once and restored after ``restore_min`` minutes; its ``lock_after``-th trip within
    ``lock_window_min`` minutes locks it until staff unlock it. ``exempt`` rooms (a registered medical
    device) are never tripped by signature; the overload limit still applies to them."""

    id: Ident = "campus-default"
    rooms: list[str] = Field(default_factory=list)
    buildings: list[str] = Field(default_factory=list)
    step_w: Annotated[float, _between(100, 100_000)] = 800.0
    min_power_factor: Annotated[float, _between(0, 1)] = 0.95
    hold_s: Annotated[float, _between(1, 3600)] = 10.0
    restore_min: Annotated[float, _between(0.1, 1440)] = 10.0
    lock_after: Annotated[int, _between(1, 100)] = 3
    lock_window_min: Annotated[float, _between(1, 10_080)] = 60.0
    exempt: bool = False
    reason: str = ""  # why a room is exempt or treated apart (for the record)
    allow: list[AllowedLoad] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AppliancePolicy:
        if self.rooms and self.buildings:
            raise ValueError("rooms: a policy names rooms or buildings, not both")
        bands = sorted(self.allow, key=lambda band: band.from_w)
        for before, after in itertools.pairwise(bands):
            if after.from_w <= before.to_w:
                raise ValueError(f"allow: {before.name!r} ({before.from_w:g}-{before.to_w:g} W) and {after.name!r} "
                                 f"({after.from_w:g}-{after.to_w:g} W) overlap")  # fmt: skip
        if self.exempt and not self.reason:
            raise ValueError("reason: an exempt room needs its reason (e.g. the registered medical device)")
        return self

    def allowed(self, step_w: float) -> AllowedLoad | None:
        return next((band for band in self.allow if band.from_w <= step_w <= band.to_w), None)


DEFAULT_POLICY = AppliancePolicy()
