"""A dorm room's circuits (分路): lights, sockets, air-conditioning, each metered apart (its own meter, or one
register of a multi-circuit meter), switched by its own relay, billed on its own tariff, and cut only for the
causes its policy names — a room at zero balance keeps its lights, a curfew takes the sockets only.

A room without circuits is one circuit: its meter's ``energy`` register, its relay, its tariff, cut for every
cause."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field, model_validator

from houqin.inventory.entries import Entry, Ident, _device_member

ENERGY_REGISTER = "energy"


class CutCause(StrEnum):
    """Why a room's power may be off: each circuit names the ones that switch it."""

    BALANCE = "balance"  # the prepaid balance reached the cut-off level
    CURFEW = "curfew"  # the school's dorm-power schedule (定时断电)
    TRIP = "trip"  # an overload or a high-power appliance, for a set time
    LOCK = "lock"  # locked by staff, or after repeated appliance trips


ALL_CAUSES: frozenset[CutCause] = frozenset(CutCause)


class Circuit(Entry):
    """One circuit of a room. ``meter`` defaults to the room's; ``energy_field`` is the field of its readings that
    counts this circuit's kWh (``energy`` on a meter of its own, ``energy_ac`` on a multi-circuit meter);
    ``relay`` is ``device`` (its ``relay`` command) or ``device:command`` (one channel of a multi-channel
    module); ``tariff`` defaults to the room's (a tariff at 0 fen makes the circuit free)."""

    id: Ident
    name: str = ""  # as the student reads it: 照明, 插座, 空调
    meter: Ident | None = None
    energy_field: Ident = ENERGY_REGISTER
    relay: str | None = None
    tariff: Ident | None = None
    cut_on: list[CutCause] = Field(default_factory=lambda: sorted(ALL_CAUSES))

    @model_validator(mode="after")
    def _consistent(self) -> Circuit:
        if self.relay is not None:
            _device_member(self.relay)
        if len(set(self.cut_on)) != len(self.cut_on):
            raise ValueError("cut_on: a cause is listed twice")
        if self.cut_on and self.relay is None:
            causes = ", ".join(self.cut_on)
            raise ValueError(f"relay: circuit {self.id!r} is cut on {causes} but has no relay; name the relay that "
                             "switches it, or set cut_on: [] for a circuit that is never cut")  # fmt: skip
        return self

    @property
    def relay_device(self) -> str | None:
        return None if self.relay is None else self.relay.partition(":")[0]

    @property
    def relay_command(self) -> str:
        return (self.relay or "").partition(":")[2] or "relay"


@dataclass(frozen=True)
class Switch:
    """A relay that cuts (part of) a room, and the causes it is cut for; ``circuit`` None: the whole room."""

    room: str
    circuit: str | None
    device: str
    command: str
    cut_on: frozenset[CutCause]

    def off_for(self, active: frozenset[CutCause]) -> bool:
        """Whether this switch is off while ``active`` causes hold."""
        return bool(self.cut_on & active)


@dataclass(frozen=True)
class BilledRegister:
    """An energy register billing charges a room for: a meter's field, priced on a tariff. ``key`` names
    where billing stands on it (the meter alone for its ``energy`` register, so a room that gains circuits
    keeps its history)."""

    room: str
    circuit: str | None
    meter: str
    register: str
    tariff: str

    @property
    def key(self) -> str:
        return self.meter if self.register == ENERGY_REGISTER else f"{self.meter}#{self.register}"
