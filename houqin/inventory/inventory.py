"""The validated campus: what every other part of houqin reads about gateways, devices and rooms."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from houqin.inventory.circuits import ALL_CAUSES, ENERGY_REGISTER, BilledRegister, Switch
from houqin.inventory.energy import category_of, metered_category
from houqin.inventory.model import Building, Device, DeviceModel, Gateway, Room, Site, Tariff, Team, Zone
from houqin.inventory.power import DEFAULT_POLICY, AppliancePolicy


@dataclass(frozen=True)
class Inventory:
    source: str
    site: Site
    gateways: dict[str, Gateway]
    models: dict[str, DeviceModel]
    devices: dict[str, Device]
    rooms: dict[str, Room]
    zones: dict[str, Zone]
    teams: dict[str, Team]
    tariffs: dict[str, Tariff]
    appliance_policies: dict[str, AppliancePolicy] = field(default_factory=dict)
    buildings: dict[str, Building] = field(default_factory=dict)

    def appliance_policy(self, room: Room) -> AppliancePolicy:
        """The policy guarding ``room``: the one naming it, else its building's, else the campus's."""
        policies = list(self.appliance_policies.values())
        by_room = [policy for policy in policies if room.id in policy.rooms]
        by_building = [policy for policy in policies if room.building in policy.buildings]
        campus = [policy for policy in policies if not policy.rooms and not policy.buildings]
        return next(iter(by_room or by_building or campus), DEFAULT_POLICY)

    def zone_rooms(self, zone: Zone) -> list[str]:
        """The rooms a dorm-power zone switches: the ones it names and every room of its buildings."""
        named = set(zone.rooms) | {room.id for room in self.rooms.values() if room.building in zone.buildings}
        return sorted(named & set(self.rooms))

    def building_names(self) -> list[str]:
        """Every building the inventory names: on a device, or in the ``buildings`` section."""
        return sorted({device.building for device in self.devices.values()} | set(self.buildings))

    def energy_code(self, device: Device) -> str | None:
        """The device's energy classification: its own code, else its kind's category; None for a device
        that meters no energy (lights, loudspeakers)."""
        model = self.model_of(device)
        category = metered_category(model.kind, model.measured_fields())
        return None if category is None else device.energy_code or category

    def root_meters(self, building: str, category: str) -> list[str]:
        """The meters that measure ``building``'s whole use of a category (``01000`` electricity, …): those
        not hanging from another meter of the building — its main meters, or its room meters where it has
        none. What the energy report totals a building by."""
        meters = {
            device.id: device
            for device in self.devices.values()
            if device.building == building and category_of(self.energy_code(device) or "") == category
        }
        return sorted(meter for meter, device in meters.items() if device.parent not in meters)

    def model_of(self, device: Device) -> DeviceModel:
        return self.models[device.model]

    def devices_on(self, gateway_id: str) -> list[Device]:
        return [device for device in self.devices.values() if device.gateway == gateway_id]

    def mqtt_devices(self) -> list[Device]:
        return [device for device in self.devices.values() if device.topic is not None]

    def relay_of(self, room: Room) -> Device | None:
        """The device that cuts a room's power: its own relay, else its meter if the meter has one."""
        if room.relay is not None:
            return self.devices[room.relay]
        meter = self.devices[room.meter]
        return meter if "relay" in self.model_of(meter).commands else None

    def switches(self, room: Room) -> list[Switch]:
        """The relays that cut ``room``: one per circuit that has one, else the room's relay (cut for every
        cause); empty for a room houqin cannot switch."""
        if room.circuits:
            return [Switch(room.id, circuit.id, circuit.relay_device, circuit.relay_command, frozenset(circuit.cut_on))
                    for circuit in room.circuits if circuit.relay_device is not None]  # fmt: skip
        relay = self.relay_of(room)
        return [] if relay is None else [Switch(room.id, None, relay.id, "relay", ALL_CAUSES)]

    def registers(self, room: Room) -> list[BilledRegister]:
        """The energy registers ``room`` is billed for: each circuit's, else its meter's."""
        if not room.circuits:
            return [BilledRegister(room.id, None, room.meter, ENERGY_REGISTER, room.tariff)]
        return [BilledRegister(room.id, circuit.id, circuit.meter or room.meter, circuit.energy_field,
                               circuit.tariff or room.tariff) for circuit in room.circuits]  # fmt: skip

    def room_of(self, device: Device) -> str | None:
        """The room a device serves: the one it is placed in, or the one it meters or switches; None for a
        device of a public place (a corridor's lights, a building's water main)."""
        if device.room is not None:
            return device.room
        served = self._served.get(device.id)
        return served[0] if served is not None else None

    @cached_property
    def _served(self) -> dict[str, tuple[str, str | None]]:
        """Device -> (the room it meters or switches, the circuit if it is one circuit's own)."""
        served: dict[str, tuple[str, str | None]] = {}
        for room in self.rooms.values():
            for circuit in room.circuits:
                for device_id in (circuit.meter, circuit.relay_device):
                    if device_id is not None:
                        served.setdefault(device_id, (room.id, circuit.id))
            for device_id in (room.meter, room.relay):
                if device_id is not None:
                    served.setdefault(device_id, (room.id, None))
        return served

    def team_for(self, category: str, building: str | None) -> Team | None:
        """The team that owns a repair category in a building (a building-scoped team wins)."""
        campus_wide: Team | None = None
        for team in self.teams.values():
            if category not in team.categories:
                continue
            if building is not None and building in team.buildings:
                return team
            if not team.buildings:
                campus_wide = team
        return campus_wide

    def device_tags(self, device: Device) -> dict[str, str]:
        """The tags every reading of ``device`` carries: where it is, what it is, how it is reached."""
        tags = {"device": device.id, "kind": self.model_of(device).kind, "model": device.model,
                "building": device.building}  # fmt: skip
        if device.floor is not None:
            tags["floor"] = str(device.floor)
        room = self.room_of(device)
        if room is not None:
            tags["room"] = room
        circuit = self._served.get(device.id, ("", None))[1]
        if circuit is not None:  # a circuit's own meter: the dashboards split a room's energy by it
            tags["room_circuit"] = circuit
        if device.gateway is not None:
            tags["gateway"] = device.gateway
        code = self.energy_code(device)
        if code is not None:  # the energy classification, for the dashboards' sub-item panels
            tags["energy_code"] = code
        # Site tags cannot overwrite the inventory's own: Grafana panels group by those.
        return {**device.tags, **tags}

    def summary(self) -> dict[str, int]:
        """Counts per kind of entry, and devices per kind, for ``houqin check``."""
        counts = {
            "gateways": len(self.gateways),
            "models": len(self.models),
            "devices": len(self.devices),
            "rooms": len(self.rooms),
            "zones": len(self.zones),
            "teams": len(self.teams),
            "tariffs": len(self.tariffs),
        }
        for device in self.devices.values():
            key = f"devices.{self.model_of(device).kind}"
            counts[key] = counts.get(key, 0) + 1
        return counts
