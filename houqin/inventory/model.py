"""The campus inventory schema: site, gateways, device models, devices, rooms, zones, teams, tariffs.

Each class validates one entry on its own; references between entries are checked in
``houqin.inventory.references`` once every entry has been read. Devices and their models live in
``devices``, what every entry shares in ``entries``; all are importable from here.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from houqin.inventory.circuits import Circuit, CutCause
from houqin.inventory.devices import (
    Command,
    Device,
    DeviceModel,
    Gateway,
    PayloadField,
    PayloadMap,
    RegisterField,
    command_topic,
)
from houqin.inventory.energy import Building
from houqin.inventory.entries import (
    REGISTER_COUNT,
    TOPIC_FIELDS,
    TOPIC_PLACEHOLDER,
    Address,
    DataType,
    DeviceKind,
    Entry,
    Ident,
    Port,
    RegisterTable,
    Seconds,
    UnitId,
    WordOrder,
    _between,
    _device_member,
)
from houqin.inventory.power import AllowedLoad, AppliancePolicy


class Site(Entry):
    name: str = Field(min_length=1)
    timezone: str = "Asia/Shanghai"
    latitude: Annotated[float, _between(-90, 90)] | None = None
    longitude: Annotated[float, _between(-180, 180)] | None = None

    @model_validator(mode="after")
    def _known_timezone(self) -> Site:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown IANA timezone {self.timezone!r}") from None
        return self


class Room(Entry):
    id: Ident
    building: str = Field(min_length=1)
    floor: Annotated[int, _between(-10, 200)]
    beds: Annotated[int, _between(0, 64)] = 4
    meter: Ident
    relay: Ident | None = None  # device that cuts the room; default: the meter, if its model has a relay
    tariff: Ident
    power_limit_w: Annotated[float, _between(1, 100_000)] | None = None  # default: billing.power_limit_w
    # Circuits metered, switched and priced apart (lights, sockets, AC); none: the room is one circuit. The
    # room's meter is still the one whose power the overload and appliance guards watch.
    circuits: list[Circuit] = Field(default_factory=list)

    @model_validator(mode="after")
    def _circuits(self) -> Room:
        if not self.circuits:
            return self
        if self.relay is not None:
            raise ValueError("relay: a room with circuits is switched by its circuits' relays")
        seen: set[str] = set()
        for circuit in self.circuits:
            if circuit.id in seen:
                raise ValueError(f"circuits: circuit {circuit.id!r} is listed twice")
            seen.add(circuit.id)
        return self


ZoneKind = Literal["lighting", "broadcast", "dorm_power"]
# Kinds whose zone holds a state (on, off, dim, a power limit) from one entry to the next; a broadcast zone
# plays programmes at moments instead.
STATE_KINDS: frozenset[str] = frozenset({"lighting", "dorm_power"})


class Zone(Entry):
    """A named group that schedules drive together: lighting circuits, broadcast areas, or dorm rooms whose
    power follows a curfew (``dorm_power``). A lighting or broadcast member is a device (all its outputs of
    the zone's kind) or ``device:command`` (one circuit of a multi-circuit controller); a dorm-power zone
    names ``rooms`` and whole ``buildings`` instead, and switches them through the power policy."""

    id: Ident
    name: str = ""
    kind: ZoneKind
    devices: list[Annotated[str, AfterValidator(_device_member)]] = Field(default_factory=list)
    rooms: list[str] = Field(default_factory=list)
    buildings: list[str] = Field(default_factory=list)
    # What the zone is left at when no schedule, override or entry says otherwise (dorm power: on).
    default: Literal["on", "off"] = "off"
    building: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _dorm_power_default(cls, data: Any) -> Any:
        # Rooms have power unless a curfew says otherwise.
        if isinstance(data, dict) and data.get("kind") == "dorm_power" and "default" not in data:
            return {**data, "default": "on"}
        return data

    @model_validator(mode="after")
    def _members_of_kind(self) -> Zone:
        if self.kind == "dorm_power":
            if self.devices:
                raise ValueError("devices: a dorm_power zone names rooms and buildings, not devices")
            if not self.rooms and not self.buildings:
                raise ValueError("rooms: a dorm_power zone needs rooms or buildings")
            return self
        if self.rooms or self.buildings:
            raise ValueError(f"rooms: only a dorm_power zone names rooms and buildings; a {self.kind} zone has devices")
        if not self.devices:
            raise ValueError("devices: a zone needs at least one device")
        if self.kind == "broadcast" and self.default != "off":
            raise ValueError("default: a broadcast zone is silent unless something plays")
        return self

    @property
    def holds_state(self) -> bool:
        return self.kind in STATE_KINDS

    def members(self) -> list[tuple[str, str | None]]:
        """``(device, command or None)`` for every member."""
        return [(device, command or None) for device, _, command in (m.partition(":") for m in self.devices)]


class Team(Entry):
    id: Ident
    name: str = Field(min_length=1)
    categories: list[Ident] = Field(min_length=1)
    buildings: list[str] = Field(default_factory=list, description="empty: the whole campus")


Fen = Annotated[int, _between(0, 100_000)]


class TariffPeriod(Entry):
    """A time-of-use band (峰 peak / 平 flat / 谷 valley): from ``start`` to ``end`` local time each day;
    ``end`` before ``start`` runs over midnight."""

    name: Ident
    start: time
    end: time
    price_fen_per_kwh: Fen


class Tariff(Entry):
    """A price per kWh in integer fen: flat, or by time-of-use periods that cover the day exactly; a free
    monthly allowance used before money (per room and per bed); the smallest and largest top-up."""

    id: Ident
    price_fen_per_kwh: Fen | None = None
    periods: list[TariffPeriod] = Field(default_factory=list)
    free_kwh_per_month: Annotated[float, _between(0, 100_000)] = 0.0
    free_kwh_per_bed_per_month: Annotated[float, _between(0, 10_000)] = 0.0
    min_topup_fen: Annotated[int, _between(1, 10_000_000)] = 100
    max_topup_fen: Annotated[int, _between(1, 10_000_000)] = 100_000
    description: str = ""

    def free_kwh(self, beds: int) -> float:
        """The monthly free allowance of a room with ``beds`` beds."""
        return self.free_kwh_per_month + self.free_kwh_per_bed_per_month * beds

    @model_validator(mode="after")
    def _prices(self) -> Tariff:
        if (self.price_fen_per_kwh is None) == (not self.periods):
            raise ValueError("give either price_fen_per_kwh (flat) or periods (time of use)")
        if self.min_topup_fen > self.max_topup_fen:
            raise ValueError(f"min_topup_fen {self.min_topup_fen} is above max_topup_fen {self.max_topup_fen}")
        if self.periods:
            minutes = [0] * (24 * 60)
            for period in self.periods:
                start = period.start.hour * 60 + period.start.minute
                end = period.end.hour * 60 + period.end.minute
                span = range(start, end) if start < end else [*range(start, 24 * 60), *range(0, end)]
                for minute in span:
                    minutes[minute] += 1
            if any(count != 1 for count in minutes):
                gaps = sum(count == 0 for count in minutes)
                overlaps = sum(count > 1 for count in minutes)
                raise ValueError(f"periods must cover the day once: {gaps} minutes uncovered, {overlaps} covered twice")
        return self


SECTIONS: dict[str, type[Entry]] = {
    "appliance_policies": AppliancePolicy,
    "buildings": Building,
    "gateways": Gateway,
    "models": DeviceModel,
    "devices": Device,
    "rooms": Room,
    "zones": Zone,
    "teams": Team,
    "tariffs": Tariff,
}

TOP_LEVEL_KEYS: frozenset[str] = frozenset({"site", *SECTIONS})


def entry_key(section: str, entry: Any) -> str:
    """The identifying key of an entry (models are named, everything else has an id)."""
    return str(entry.name if section == "models" else entry.id)


__all__ = [
    "REGISTER_COUNT",
    "SECTIONS",
    "TOPIC_FIELDS",
    "TOPIC_PLACEHOLDER",
    "TOP_LEVEL_KEYS",
    "Address",
    "AllowedLoad",
    "AppliancePolicy",
    "Building",
    "Circuit",
    "Command",
    "CutCause",
    "DataType",
    "Device",
    "DeviceKind",
    "DeviceModel",
    "Entry",
    "Gateway",
    "Ident",
    "PayloadField",
    "PayloadMap",
    "Port",
    "RegisterField",
    "RegisterTable",
    "Room",
    "Seconds",
    "Site",
    "Tariff",
    "TariffPeriod",
    "Team",
    "UnitId",
    "WordOrder",
    "Zone",
    "command_topic",
    "entry_key",
]
