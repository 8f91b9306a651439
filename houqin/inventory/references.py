"""Whole-file checks: duplicate ids and every reference between inventory entries."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from houqin.config_file import ConfigIssue, LocatedDocument
from houqin.inventory.circuits import Circuit, CutCause
from houqin.inventory.metering_tree import check_metering_tree
from houqin.inventory.model import AppliancePolicy, Device, DeviceModel, Entry, Gateway, Room, Team, Zone, entry_key

E = TypeVar("E", bound=Entry)

# The meter protocols addressed by the digits printed on the meter: their name and address length.
METERS = {"dlt645": ("DL/T 645", 12), "cjt188": ("CJ/T 188", 14)}


def _entries(sections: dict[str, list[tuple[int, Entry]]], section: str, kind: type[E]) -> list[tuple[int, E]]:
    return [(index, cast(E, entry)) for index, entry in sections[section]]


def check_references(
    document: LocatedDocument,
    sections: dict[str, list[tuple[int, Entry]]],
    shipped: dict[str, DeviceModel],
    declared: dict[str, set[str]],
) -> list[ConfigIssue]:
    """Every whole-file mistake; ``declared`` holds names of entries even if they failed validation."""
    issues: list[ConfigIssue] = []

    def report(path: tuple[str | int, ...], message: str) -> None:
        issues.append(document.issue(path, message))

    for section, entries in sections.items():
        _unique(
            document,
            ((index, entry_key(section, entry)) for index, entry in entries),
            lambda index, s=section: (s, index, "name" if s == "models" else "id"),
            issues,
        )

    models = {model.name: model for _, model in _entries(sections, "models", DeviceModel)}
    for index, model in _entries(sections, "models", DeviceModel):
        if model.name in shipped:
            report(
                ("models", index, "name"),
                f"{model.name!r} is a shipped profile; give the site model another name",
            )
    all_models = {**shipped, **models}
    known_models = set(shipped) | declared["models"]

    gateways = {gateway.id: gateway for _, gateway in _entries(sections, "gateways", Gateway)}
    _check_gateways(document, _entries(sections, "gateways", Gateway), issues)
    devices = {device.id: device for _, device in _entries(sections, "devices", Device)}

    units: dict[tuple[str, int], str] = {}
    addresses: dict[tuple[str, str], str] = {}
    topics: dict[str, str] = {}
    protocols: dict[str, tuple[str, str]] = {}  # gateway -> (protocol, the first device that set it)
    for index, device in _entries(sections, "devices", Device):
        at = ("devices", index)
        if device.model not in known_models:
            report((*at, "model"), f"unknown model {device.model!r}{_suggest(device.model, known_models)}")
        if device.gateway is not None and device.gateway not in declared["gateways"]:
            report(
                (*at, "gateway"),
                f"unknown gateway {device.gateway!r}{_suggest(device.gateway, declared['gateways'])}",
            )
        profile = all_models.get(device.model)
        if profile is not None:
            if profile.protocol == "modbus" and device.gateway is None:
                report((*at, "gateway"), f"model {profile.name!r} is read over Modbus: give a gateway and unit")
            if profile.protocol == "modbus" and device.address is not None:
                report((*at, "address"), f"model {profile.name!r} is read over Modbus: give a unit, not an address")
            if profile.protocol in METERS:
                standard, digits = METERS[profile.protocol]
                if device.unit is None and (device.gateway is None or device.address is None):
                    report((*at, "address"), f"model {profile.name!r} is a {standard} meter: give its gateway and "
                           "address")  # fmt: skip
                if device.unit is not None:
                    report((*at, "unit"), f"model {profile.name!r} is a {standard} meter: give its address, not a unit")
                if device.address is not None and len(device.address) != digits:
                    report((*at, "address"), f"a {standard} address is {digits} digits, got {len(device.address)}")
            if profile.protocol == "mqtt" and device.topic is None and profile.topic_template is None:
                report(
                    (*at, "topic"),
                    f"model {profile.name!r} reports over MQTT and has no topic_template: give the device's topic",
                )
        if device.gateway is not None and device.address is not None:
            other = addresses.setdefault((device.gateway, device.address), device.id)
            if other != device.id:
                report((*at, "address"), f"address {device.address} on gateway {device.gateway!r} is already "
                       f"device {other!r}")  # fmt: skip
            gateway = gateways.get(device.gateway)
            if gateway is not None and gateway.type == "modbus_tcp":
                report((*at, "gateway"), "DL/T 645 and CJ/T 188 meters are reached through a serial port "
                       "(rtu_serial), a serial server (rtu_over_tcp) or a DTU (dial_in), not modbus_tcp")  # fmt: skip
        if device.gateway is not None and device.unit is not None:
            other = units.setdefault((device.gateway, device.unit), device.id)
            if other != device.id:
                report(
                    (*at, "unit"),
                    f"unit {device.unit} on gateway {device.gateway!r} is already device {other!r}",
                )
            gateway = gateways.get(device.gateway)
            if gateway is not None and profile is not None and profile.protocol == "mqtt":
                report(
                    (*at, "gateway"),
                    f"model {profile.name!r} is an MQTT model; it cannot sit on a Modbus gateway",
                )
        if device.gateway is not None and profile is not None and profile.protocol in {"modbus", *METERS}:
            protocol, first = protocols.setdefault(device.gateway, (profile.protocol, device.id))
            if protocol != profile.protocol:
                report((*at, "gateway"), f"gateway {device.gateway!r} carries {protocol} (device {first!r}); "
                       f"a bus speaks one protocol")  # fmt: skip
        if device.topic is not None:
            other = topics.setdefault(device.topic, device.id)
            if other != device.id:
                report((*at, "topic"), f"topic {device.topic!r} is already device {other!r}")

    def device_kind(device_id: str) -> str | None:
        device = devices.get(device_id)
        model = all_models.get(device.model) if device else None
        return model.kind if model else None

    tariffs = declared["tariffs"]
    meters: dict[str, str] = {}
    billed: dict[tuple[str, str], str] = {}  # (meter, register) -> "room/circuit"
    for index, room in _entries(sections, "rooms", Room):
        at = ("rooms", index)
        if room.meter not in declared["devices"]:
            report((*at, "meter"), f"unknown device {room.meter!r}{_suggest(room.meter, declared['devices'])}")
        elif (kind := device_kind(room.meter)) not in {None, "electricity"}:
            report((*at, "meter"), f"device {room.meter!r} is a {kind} device, not an electricity meter")
        other = meters.setdefault(room.meter, room.id)
        if other != room.id:
            report((*at, "meter"), f"meter {room.meter!r} already belongs to room {other!r}")
        if room.relay is not None:
            relay = devices.get(room.relay)
            if room.relay not in declared["devices"]:
                report(
                    (*at, "relay"),
                    f"unknown device {room.relay!r}{_suggest(room.relay, declared['devices'])}",
                )
            elif (
                relay is not None
                and (relay_model := all_models.get(relay.model))
                and "relay" not in relay_model.commands
            ):
                report((*at, "relay"), f"device {room.relay!r} (model {relay_model.name!r}) has no 'relay' command")
        if room.tariff not in tariffs:
            report((*at, "tariff"), f"unknown tariff {room.tariff!r}{_suggest(room.tariff, tariffs)}")
        for position, circuit in enumerate(room.circuits):
            _check_circuit(room, circuit, (*at, "circuits", position), declared, devices, all_models, meters,
                           billed, report)  # fmt: skip

    for index, zone in _entries(sections, "zones", Zone):
        for position, (device_id, command) in enumerate(zone.members()):
            member = ("zones", index, "devices", position)
            if device_id not in declared["devices"]:
                report(member, f"unknown device {device_id!r}{_suggest(device_id, declared['devices'])}")
            elif (kind := device_kind(device_id)) not in {None, zone.kind}:
                report(
                    member,
                    f"device {device_id!r} is a {kind} device; a {zone.kind} zone holds {zone.kind} devices",
                )
            elif (
                command is not None
                and (member_device := devices.get(device_id)) is not None
                and (member_model := all_models.get(member_device.model)) is not None
                and command not in member_model.commands
            ):
                have = ", ".join(sorted(member_model.commands)) or "none"
                report(member, f"device {device_id!r} has no command {command!r}; it has {have}")
        seen: set[str] = set()
        for position, member_text in enumerate(zone.devices):
            if member_text in seen:
                report(("zones", index, "devices", position), f"{member_text!r} is listed twice")
            seen.add(member_text)

    _check_teams(document, _entries(sections, "teams", Team), issues)
    rooms = {room.id: room for _, room in _entries(sections, "rooms", Room)}
    _check_appliance_policies(document, _entries(sections, "appliance_policies", AppliancePolicy), rooms, issues)

    def switchable(room: Room) -> bool:
        if room.circuits:
            return any(CutCause.CURFEW in circuit.cut_on for circuit in room.circuits)
        relay = devices.get(room.relay or room.meter)
        model = all_models.get(relay.model) if relay is not None else None
        return model is None or "relay" in model.commands  # an unknown model is reported on its device

    check_metering_tree(_entries(sections, "devices", Device), all_models, report)
    dorm_zones = [(index, zone) for index, zone in _entries(sections, "zones", Zone) if zone.kind == "dorm_power"]
    _check_dorm_power_zones(document, dorm_zones, rooms, switchable, issues)
    return issues


def _check_circuit(
    room: Room, circuit: Circuit, at: tuple[str | int, ...], declared: dict[str, set[str]],
    devices: dict[str, Device], models: dict[str, DeviceModel], meters: dict[str, str],
    billed: dict[tuple[str, str], str], report: Callable[[tuple[str | int, ...], str], None],
) -> None:  # fmt: skip
    """A circuit's meter, register, relay and tariff exist and fit; no register is billed twice."""
    known = declared["devices"]
    meter_id = circuit.meter or room.meter
    meter = devices.get(meter_id)
    meter_model = models.get(meter.model) if meter is not None else None
    if circuit.meter is not None:
        if circuit.meter not in known:
            report((*at, "meter"), f"unknown device {circuit.meter!r}{_suggest(circuit.meter, known)}")
            return
        if meter_model is not None and meter_model.kind != "electricity":
            report((*at, "meter"), f"device {circuit.meter!r} is a {meter_model.kind} device, not an electricity meter")
        other = meters.setdefault(circuit.meter, room.id)
        if other != room.id:
            report((*at, "meter"), f"meter {circuit.meter!r} already belongs to room {other!r}")
    fields = meter_model.measured_fields() if meter_model is not None else {}
    if meter_model is not None and (circuit.energy_field not in fields or fields[circuit.energy_field][0] != "number"):
        numbers = sorted(name for name, (kind, _) in fields.items() if kind == "number")
        report((*at, "energy_field"), f"meter {meter_id!r} (model {meter_model.name!r}) reads no number "
               f"{circuit.energy_field!r}{_suggest(circuit.energy_field, set(numbers))}")  # fmt: skip
    other_circuit = billed.setdefault((meter_id, circuit.energy_field), f"{room.id}/{circuit.id}")
    if other_circuit != f"{room.id}/{circuit.id}":
        report((*at, "energy_field"), f"{meter_id}'s {circuit.energy_field!r} is already billed for circuit "
               f"{other_circuit}")  # fmt: skip
    if circuit.relay_device is not None:
        relay = devices.get(circuit.relay_device)
        relay_model = models.get(relay.model) if relay is not None else None
        if circuit.relay_device not in known:
            report((*at, "relay"), f"unknown device {circuit.relay_device!r}{_suggest(circuit.relay_device, known)}")
        elif relay_model is not None and circuit.relay_command not in relay_model.commands:
            have = ", ".join(sorted(relay_model.commands)) or "none"
            report((*at, "relay"), f"device {circuit.relay_device!r} has no command {circuit.relay_command!r}; "
                   f"it has {have}")  # fmt: skip
    if circuit.tariff is not None and circuit.tariff not in declared["tariffs"]:
        report((*at, "tariff"), f"unknown tariff {circuit.tariff!r}{_suggest(circuit.tariff, declared['tariffs'])}")


def _check_dorm_power_zones(
    document: LocatedDocument, zones: list[tuple[int, Zone]], rooms: dict[str, Room],
    switchable: Callable[[Room], bool], issues: list[ConfigIssue],
) -> None:  # fmt: skip
    # A room under two curfew zones would be switched by whichever fired last: one zone each.
    buildings = {room.building for room in rooms.values()}
    owner: dict[str, str] = {}
    for index, zone in zones:
        targets = [("rooms", i, name) for i, name in enumerate(zone.rooms)]
        targets += [("buildings", i, name) for i, name in enumerate(zone.buildings)]
        for level, position, name in targets:
            at = ("zones", index, level, position)
            known = rooms if level == "rooms" else buildings
            if name not in known:
                what = "room" if level == "rooms" else "building with rooms"
                issues.append(document.issue(at, f"unknown {what} {name!r}{_suggest(name, known)}"))
                continue
            members = [rooms[name]] if level == "rooms" else [r for r in rooms.values() if r.building == name]
            for room in members:
                other = owner.setdefault(room.id, zone.id)
                if other != zone.id:
                    issues.append(document.issue(at, f"room {room.id!r} is already in dorm_power zone {other!r}"))
                elif not switchable(room):
                    why = ("no circuit of it is cut on curfew" if room.circuits
                           else "give it a relay device, or a meter with a 'relay' command")  # fmt: skip
                    issues.append(document.issue(at, f"room {room.id!r} has no relay houqin can switch ({why})"))


def _check_appliance_policies(
    document: LocatedDocument, policies: list[tuple[int, AppliancePolicy]], rooms: dict[str, Room],
    issues: list[ConfigIssue],
) -> None:  # fmt: skip
    # A room must be guarded by one policy at each level, or which one applies would be a guess.
    buildings = {room.building for room in rooms.values()}
    claimed: dict[tuple[str, str], str] = {}
    for index, policy in policies:
        targets = [("rooms", name) for name in policy.rooms] + [("buildings", name) for name in policy.buildings]
        if not targets:
            targets = [("campus", "*")]
        for position, (level, name) in enumerate(targets):
            at = ("appliance_policies", index) if level == "campus" else ("appliance_policies", index, level, position)
            known = rooms if level == "rooms" else buildings
            if level != "campus" and name not in known:
                what = "room" if level == "rooms" else "building with rooms"
                issues.append(document.issue(at, f"unknown {what} {name!r}{_suggest(name, known)}"))
                continue
            other = claimed.setdefault((level, name), policy.id)
            if other != policy.id:
                target = "the whole campus" if level == "campus" else f"{level[:-1]} {name!r}"
                issues.append(document.issue(at, f"{target} is already guarded by appliance policy {other!r}"))


def _check_gateways(document: LocatedDocument, gateways: list[tuple[int, Gateway]], issues: list[ConfigIssue]) -> None:
    # Two gateways on one connection would race each other on a bus that answers one request at a time.
    endpoints: dict[str, str] = {}
    registrations: dict[bytes, str] = {}
    listeners: dict[int, tuple[str, str]] = {}  # dial-in port -> (listen address, first gateway on it)
    prefixes: dict[tuple[int, bytes], tuple[str, str]] = {}  # (port, registration) -> (gateway, as written)
    for index, gateway in gateways:
        if gateway.type == "dial_in":
            # DTUs share a listening port and are told apart by their registration packet alone.
            other = registrations.setdefault(gateway.registration_bytes, gateway.id)
            if other != gateway.id:
                issues.append(document.issue(("gateways", index, "registration"),
                                             f"registration {gateway.registration!r} is already gateway {other!r}: "
                                             "a DTU's registration names one gateway"))  # fmt: skip
            mine = gateway.registration_bytes
            for (port, registration), (other, text) in prefixes.items():
                if (
                    port == gateway.port
                    and registration != mine  # the same registration is reported above
                    and (registration.startswith(mine) or mine.startswith(registration))
                ):
                    message = (f"registration {gateway.registration!r} and {text!r} of gateway {other!r} on port "
                               f"{port}: one starts the other, so they cannot be told apart")  # fmt: skip
                    issues.append(document.issue(("gateways", index, "registration"), message))
            prefixes.setdefault((gateway.port, mine), (gateway.id, gateway.registration or ""))
            host, first = listeners.setdefault(gateway.port, (gateway.listen_host, gateway.id))
            if host != gateway.listen_host:
                issues.append(document.issue(("gateways", index, "port"),
                                             f"port {gateway.port} is already listened on at {host} for gateway "
                                             f"{first!r}: DTUs on one port share its address"))  # fmt: skip
            continue
        if gateway.type == "rtu_serial":
            endpoint, field = f"serial port {gateway.device}", "device"
        else:
            endpoint, field = f"{gateway.host}:{gateway.port}", "host"
        other = endpoints.setdefault(endpoint, gateway.id)
        if other != gateway.id:
            issues.append(
                document.issue(("gateways", index, field), f"{endpoint} is already gateway {other!r}; one link per bus")
            )


def _check_teams(document: LocatedDocument, teams: list[tuple[int, Team]], issues: list[ConfigIssue]) -> None:
    # A repair category must lead to exactly one team wherever the fault is, or orders would be ambiguous.
    owners: dict[tuple[str, str], str] = {}
    for index, team in teams:
        for position, category in enumerate(team.categories):
            for building in team.buildings or ["*"]:
                other = owners.setdefault((category, building), team.id)
                if other != team.id:
                    where = "the whole campus" if building == "*" else f"building {building!r}"
                    issues.append(
                        document.issue(
                            ("teams", index, "categories", position),
                            f"category {category!r} in {where} is already owned by team {other!r}",
                        )
                    )


def _unique(
    document: LocatedDocument,
    keys: Iterable[tuple[int, str]],
    path_of: Callable[..., tuple[Any, ...]],
    issues: list[ConfigIssue],
) -> None:
    first: dict[str, int] = {}
    for index, key in keys:
        if key in first:
            line = document.line_of(path_of(first[key]))
            issues.append(document.issue(path_of(index), f"duplicate {key!r} (first on line {line})"))
        else:
            first[key] = index


def _suggest(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
