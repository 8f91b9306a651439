"""The inventory: the demo campus loads; every kind of mistake is reported with file, line and path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from houqin.config_file import ConfigError
from houqin.inventory import Inventory, load_inventory
from tests.conftest import DEMO_INVENTORY


def test_demo_campus_is_complete(demo_inventory: Inventory) -> None:
    inv = demo_inventory
    dorm_rooms = [room for room in inv.rooms.values() if room.building.startswith("dorm-")]
    assert {room.building for room in dorm_rooms} >= {"dorm-1", "dorm-2"}
    assert len({(room.building, room.floor) for room in dorm_rooms}) >= 6
    assert len(dorm_rooms) >= 60
    # every room has its own meter
    assert len({room.meter for room in inv.rooms.values()}) == len(inv.rooms)
    floors = {(room.building, room.floor) for room in dorm_rooms}
    for building, floor in floors:
        gateways = {
            inv.devices[room.meter].gateway for room in dorm_rooms if (room.building, room.floor) == (building, floor)
        }
        assert len(gateways) == 1
        assert inv.gateways[gateways.pop()].type in {"rtu_over_tcp", "dial_in"}  # a serial server or a 4G DTU
    mains = [d for d in inv.devices.values() if d.tags.get("circuit") == "main"]
    assert mains and all(inv.gateways[d.gateway].type == "modbus_tcp" for d in mains if d.gateway)
    kinds = {(inv.model_of(d).kind, inv.model_of(d).protocol) for d in inv.devices.values()}
    assert {("water", "mqtt"), ("lighting", "modbus"), ("lighting", "mqtt"), ("broadcast", "mqtt")} <= kinds
    assert {zone.kind for zone in inv.zones.values()} == {"lighting", "broadcast", "dorm_power"}
    categories = {c for team in inv.teams.values() for c in team.categories}
    assert {"electrical", "plumbing", "broadcast"} <= categories
    assert inv.relay_of(inv.rooms["D1-101"]) is not None
    assert inv.team_for("plumbing", "dorm-1").id == "plumbing"  # type: ignore[union-attr]


def write(tmp_path: Path, text: str, name: str = "campus.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_inventory(path)
    return [str(issue) for issue in caught.value.issues]


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    matches = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    return matches[occurrence - 1]


def test_three_planted_mistakes_are_all_reported_with_line_and_path(tmp_path: Path) -> None:
    text = DEMO_INVENTORY.read_text(encoding="utf-8")
    text = text.replace("unit: 30, building: dorm-1, floor: 2", "unit: 300, building: dorm-1, floor: 2", 1)
    text = text.replace(
        "model: mqtt-water-meter\n    topic: campus/dorm-2",
        "model: mqtt-watermeter\n    topic: campus/dorm-2",
        1,
    )
    text = text.replace("meter: d2-305-meter", "meter: d2-304-meter", 1)
    path = write(tmp_path, text, "devices.yaml")
    errors = errors_of(path)
    assert len(errors) == 3, errors
    unit_line = line_of(text, "unit: 300")
    model_line = line_of(text, "mqtt-watermeter")
    meter_line = line_of(text, "meter: d2-304-meter", 2)
    assert re.fullmatch(rf"{path}:{unit_line}: devices\[\d+\]\.unit: must be between 1 and 247, got 300", errors[0])
    assert re.fullmatch(
        rf"{path}:{model_line}: devices\[\d+\]\.model: "
        r"unknown model 'mqtt-watermeter' \(did you mean 'mqtt-water-meter'\?\)",
        errors[1],
    )
    assert re.fullmatch(
        rf"{path}:{meter_line}: rooms\[\d+\]\.meter: meter 'd2-304-meter' already belongs to room 'D2-304'",
        errors[2],
    )


MINIMAL = """\
site: {name: Test School}
tariffs:
  - {id: flat, price_fen_per_kwh: 60}
gateways:
  - {id: gw1, type: rtu_over_tcp, host: 10.0.0.5, port: 4196}
devices:
  - {id: m1, model: eastron-sdm120, gateway: gw1, unit: 1, building: b1}
rooms:
  - {id: R101, building: b1, floor: 1, meter: m1, tariff: flat}
"""


def test_minimal_inventory_uses_shipped_profiles(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, MINIMAL))
    assert inv.model_of(inv.devices["m1"]).registers[0].field == "voltage"
    assert inv.relay_of(inv.rooms["R101"]) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            "  - {id: gw1, type: rtu_over_tcp, host: 10.0.0.5, port: 4196}",
            "gateways[0].port: must be between 1 and 65535, got 70000",
        ),
        ("  - {id: gw1, type: rtu_serial}", "gateways[0].device: a serial gateway needs the serial port"),
        (
            "  - {id: gw1, type: rtu_over_tcp, host: h, max_in_flight: 4}",
            "gateways[0].max_in_flight: an RS-485 bus answers one request at a time",
        ),
        (
            "  - {id: m1, model: eastron-sdm120, gateway: gw2, unit: 1, building: b1}",
            "devices[0].gateway: unknown gateway 'gw2' (did you mean 'gw1'?)",
        ),
        (
            "  - {id: m1, model: eastron-sdm120, gateway: gw1, building: b1}",
            "devices[0].unit: a device on a gateway needs its Modbus unit id (1-247) or DL/T 645 address",
        ),
        (
            "  - {id: m1, model: eastron-sdm120, gateway: gw1, unit: 1, building: b1, colour: red}",
            "devices[0].colour: unknown field",
        ),
        (
            "  - {id: m1, model: eastron-sdm120, topic: a/b, building: b1}",
            "devices[0].gateway: model 'eastron-sdm120' is read over Modbus",
        ),
        (
            "  - {id: R101, building: b1, floor: 1, meter: m1, tariff: cheap}",
            "rooms[0].tariff: unknown tariff 'cheap'",
        ),
        (
            "  - {id: R101, building: b1, floor: 1, meter: m2, tariff: flat}",
            "rooms[0].meter: unknown device 'm2'",
        ),
        (
            "  - {id: R101, building: b1, floor: 1, meter: m1, relay: m1, tariff: flat}",
            "rooms[0].relay: device 'm1' (model 'eastron-sdm120') has no 'relay' command",
        ),
        (
            "site: {name: Test School, timezone: Mars/Olympus}",
            "site.timezone: unknown IANA timezone 'Mars/Olympus'",
        ),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, change: str, expected: str) -> None:
    key = change.split(":")[0].split("{")[-1].strip() if change.startswith("  ") else "site"
    lines = MINIMAL.splitlines()
    target = next(i for i, line in enumerate(lines) if line.startswith(change[:10]) and (key in line))
    if "70000" in expected:
        change = change.replace("4196", "70000")
    lines[target] = change
    path = write(tmp_path, "\n".join(lines) + "\n")
    errors = errors_of(path)
    assert any(error.startswith(f"{path}:{target + 1}: {expected}") for error in errors), errors


def test_structure_and_reference_errors_come_together(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
zones:
  - {id: z1, kind: lighting, devices: [m1, ghost]}
teams:
  - {id: t1, name: A, categories: [electrical]}
  - {id: t2, name: B, categories: [electrical]}
  - {id: t1, name: C, categories: [plumbing], extra: 1}
"""
    )
    path = write(tmp_path, text)
    errors = errors_of(path)
    assert (
        f"{path}:11: zones[0].devices[0]: device 'm1' is a electricity device; a lighting zone holds lighting devices"
        in errors
    )
    assert f"{path}:11: zones[0].devices[1]: unknown device 'ghost'" in errors
    assert (
        f"{path}:14: teams[1].categories[0]: category 'electrical' in the whole campus is already owned by team 't1'"
        in errors
    )
    assert f"{path}:15: teams[2].extra: unknown field" in errors


def test_duplicates_are_reported_with_the_first_line(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "rooms:",
        "  - {id: m1, model: eastron-sdm120, gateway: gw1, unit: 2, building: b1}\n"
        "  - {id: m3, model: eastron-sdm120, gateway: gw1, unit: 1, building: b1}\nrooms:",
    )
    path = write(tmp_path, text)
    errors = errors_of(path)
    assert errors == [
        f"{path}:8: devices[1].id: duplicate 'm1' (first on line 7)",
        f"{path}:9: devices[2].unit: unit 1 on gateway 'gw1' is already device 'm1'",
    ]


def test_a_broken_gateway_does_not_also_break_its_devices(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("port: 4196", "port: 0"))
    assert errors_of(path) == [f"{path}:5: gateways[0].port: must be between 1 and 65535, got 0"]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("rooms:", "rooms: [\n"))
    errors = errors_of(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}:") and "invalid YAML" in errors[0]


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "site: {name: Again}\n")
    assert f"{path}:10: site: duplicate key (first given on line 1)" in errors_of(path)


def test_yaml_on_off_stay_strings(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
models:
  - name: site-relay
    kind: electricity
    protocol: modbus
    registers: [{field: closed, table: coil, address: 5, type: bool}]
    commands:
      relay: {table: coil, address: 5, actions: {on: true, off: false}}
"""
    )
    inv = load_inventory(write(tmp_path, text))
    assert inv.models["site-relay"].commands["relay"].actions == {"on": True, "off": False}


def test_unknown_section_and_missing_site(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("site: {name: Test School}\n", "sites: {name: x}\n"))
    errors = errors_of(path)
    assert any("sites: unknown section" in error for error in errors)
    assert f"{path}:1: site: required section is missing" in errors


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    errors = errors_of(tmp_path / "nope.yaml")
    assert errors == [f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"]


def test_register_map_checks(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
models:
  - name: bad-map
    kind: electricity
    protocol: modbus
    registers:
      - {field: a, table: holding, address: 65535, type: float32}
      - {field: b, table: coil, address: 1, type: uint16}
      - {field: a, table: input, address: 3}
"""
    )
    path = write(tmp_path, text)
    errors = errors_of(path)
    assert any("models[0].registers[0].address: 65535 + 2 registers runs past 65535" in e for e in errors), errors
    assert any("models[0].registers[1].type: a coil holds one bit" in e for e in errors), errors


def test_mqtt_topics_from_a_model_template(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
models:
  - name: site-water
    kind: water
    protocol: mqtt
    topic_template: "campus/{building}/water/{device}/state"
    payload: {fields: {flow: {path: flow}}}
  - name: floor-water
    kind: water
    protocol: mqtt
    topic_template: "campus/{building}/{floor}/{device}"
    payload: {fields: {flow: {path: flow}}}
  - name: bad-template
    kind: water
    protocol: mqtt
    topic_template: "campus/{campus}/{device}"
    payload: {fields: {flow: {path: flow}}}
"""
    )
    good = text.replace(
        "rooms:",
        "  - {id: w1, model: site-water, building: b1}\n"
        "  - {id: w2, model: site-water, building: b1, topic: own/topic}\nrooms:",
    )
    inv = load_inventory(
        write(tmp_path, good.replace("  - name: bad-template", "  - name: unused").replace("{campus}", "{building}"))
    )
    assert inv.devices["w1"].topic == "campus/b1/water/w1/state"
    assert inv.devices["w2"].topic == "own/topic"
    bad = good.replace(
        "  - {id: w2, model: site-water, building: b1, topic: own/topic}",
        "  - {id: w2, model: floor-water, building: b1}",
    )
    path = write(tmp_path, bad, "bad.yaml")
    errors = errors_of(path)
    assert any("models[2].topic_template: unknown placeholder {campus}" in e for e in errors), errors
    assert any(
        re.search(r"devices\[2\]\.floor: the topic template of model 'floor-water' needs it", e) for e in errors
    ), errors


def test_zone_circuit_members_and_defaults_are_checked(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "rooms:",
        "  - {id: p1, model: modbus-lighting-4ch, gateway: gw1, unit: 2, building: b1}\nrooms:",
    ) + (
        "zones:\n"
        "  - {id: z1, kind: lighting, devices: ['p1:circuit1', 'p1:circuit9', 'p1:circuit1']}\n"
        "  - {id: z2, kind: broadcast, devices: [p1], default: 'on'}\n"
    )
    path = write(tmp_path, text)
    errors = errors_of(path)
    assert (
        f"{path}:12: zones[0].devices[1]: device 'p1' has no command 'circuit9'; "
        "it has circuit1, circuit2, circuit3, circuit4" in errors
    )
    assert f"{path}:12: zones[0].devices[2]: 'p1:circuit1' is listed twice" in errors
    assert any(e.startswith(f"{path}:13: zones[1].default: a broadcast zone is silent") for e in errors), errors


def test_an_alias_bomb_or_cycle_is_refused_with_its_line(tmp_path: Path) -> None:
    lines = ["x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x-{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    path = write(tmp_path, MINIMAL + "\n".join(lines) + "\n")
    assert errors_of(path) == [f"{path}:1: aliases (*name) expand to more than 100,000 values; refused"]
    path = write(tmp_path, MINIMAL + "x-loop: &loop {again: *loop}\n")
    assert errors_of(path) == [f"{path}:10: an alias (*name) inside the block it names"]
    # Shared defaults through a merge key are fine, and each device keeps its own line.
    first = "{id: m1, model: eastron-sdm120, gateway: gw1, unit: 1, building: b1}"
    shared = MINIMAL.replace(
        f"devices:\n  - {first}", f"devices:\n  - &meter {first}\n  - {{<<: *meter, id: m2, unit: 2}}"
    )
    inventory = load_inventory(write(tmp_path, shared))
    assert inventory.devices["m2"].gateway == "gw1" and inventory.devices["m2"].unit == 2


DLT645_SITE = """\
site: {name: Test School}
tariffs:
  - {id: flat, price_fen_per_kwh: 60}
gateways:
  - {id: dorm3, type: rtu_over_tcp, host: 10.0.0.9, port: 4196, baudrate: 2400, parity: E}
  - {id: tcp1, type: modbus_tcp, host: 10.0.0.10}
devices:
  - {id: m1, model: dlt645-2007-single-phase, gateway: dorm3, address: "000012345678", building: b3}
  - {id: m2, model: dlt645-1997-single-phase, gateway: dorm3, address: "000012345679", building: b3}
rooms:
  - {id: R1, building: b3, floor: 1, meter: m1, tariff: flat}
"""


def test_dlt645_meters_are_described_by_address_and_checked(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, DLT645_SITE))
    fields = inventory.model_of(inventory.devices["m1"]).measured_fields()
    assert fields["energy"] == ("number", "kWh") and fields["power"] == ("number", "W")
    assert fields["relay_closed"] == ("bool", "")
    wrong = DLT645_SITE.replace('address: "000012345679"', 'address: "12345679"')
    wrong = wrong.replace('gateway: dorm3, address: "000012345678"', 'gateway: tcp1, address: "000012345678"')
    more = ('  - {id: m3, model: dlt645-2007-single-phase, gateway: dorm3, address: "000012345670", building: b3}\n'
            "  - {id: m4, model: eastron-sdm120, gateway: dorm3, unit: 4, building: b3}\n"
            "  - {id: m5, model: dlt645-2007-single-phase, gateway: dorm3, unit: 5, building: b3}\n")  # fmt: skip
    wrong = wrong.replace("rooms:\n", more + "rooms:\n")
    wrong += ("models:\n  - {name: odd645, kind: electricity, protocol: dlt645,"
              " dlt645: {version: '2007', items: ['00000000', '0400FFFF']}}\n")  # fmt: skip
    path = write(tmp_path, wrong)
    errors = "\n".join(errors_of(path))
    assert "devices[1].address: string should match pattern" in errors, errors
    assert (
        "devices[0].gateway: DL/T 645 and CJ/T 188 meters are reached through a serial port (rtu_serial), a serial"
        in errors
    )
    assert "devices[3].gateway: gateway 'dorm3' carries dlt645 (device 'm3'); a bus speaks one protocol" in errors
    assert "devices[4].unit: model 'dlt645-2007-single-phase' is a DL/T 645 meter" in errors, errors
    assert "unknown DL/T 645-2007 data identifier '0400FFFF'" in errors, errors
    assert all(re.match(rf"{re.escape(str(path))}:\d+: ", line) for line in errors.splitlines()), errors


def test_dorm_power_zones_are_checked(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "rooms:",
        "  - {id: m2, model: eastron-sdm120, gateway: gw1, unit: 2, building: b1}\n"
        "  - {id: r2, model: generic-relay, gateway: gw1, unit: 12, building: b1}\nrooms:",
    ) + (
        "  - {id: R102, building: b1, floor: 1, meter: m2, relay: r2, tariff: flat}\n"
        "zones:\n"
        "  - {id: nights, kind: dorm_power, rooms: [R102, R999], buildings: [b9]}\n"
        "  - {id: b1-nights, kind: dorm_power, buildings: [b1]}\n"
        "  - {id: mixed, kind: dorm_power, rooms: [R102], devices: [m2]}\n"
        "  - {id: empty, kind: dorm_power}\n"
        "  - {id: lights, kind: lighting, devices: [r2], rooms: [R102]}\n"
    )
    path = write(tmp_path, text)
    errors = errors_of(path)
    zones = line_of(text, "zones:")
    assert f"{path}:{zones + 1}: zones[0].rooms[1]: unknown room 'R999'" in errors, errors
    assert any(e.startswith(f"{path}:{zones + 1}: zones[0].buildings[0]: unknown building with rooms 'b9'")
               for e in errors), errors  # fmt: skip
    assert f"{path}:{zones + 2}: zones[1].buildings[0]: room 'R102' is already in dorm_power zone 'nights'" in errors
    assert any(f"{path}:{zones + 2}: zones[1].buildings[0]: room 'R101' has no relay houqin can switch" in e
               for e in errors), errors  # fmt: skip
    assert any(f"{path}:{zones + 3}: zones[2]" in e and "names rooms and buildings, not devices" in e
               for e in errors), errors  # fmt: skip
    assert any(f"{path}:{zones + 4}: zones[3]" in e and "needs rooms or buildings" in e for e in errors), errors
    assert any(f"{path}:{zones + 5}: zones[4]" in e and "only a dorm_power zone names rooms" in e
               for e in errors), errors  # fmt: skip


def test_a_dorm_power_zone_is_on_by_default(tmp_path: Path) -> None:
    text = MINIMAL + "zones:\n  - {id: nights, kind: dorm_power, rooms: [R101], default: 'off'}\n"
    text = text.replace("  - {id: m1, model: eastron-sdm120,", "  - {id: m1, model: generic-relay,")
    assert load_inventory(write(tmp_path, text)).zones["nights"].default == "off"
    demo = load_inventory(Path(__file__).parent.parent / "devices.yaml")
    assert demo.zones["dorm-1-power"].default == "on"


def test_energy_codes_buildings_and_the_metering_tree_are_checked(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "rooms:",
        "  - {id: main, model: eastron-sdm630, gateway: gw1, unit: 10, building: b1, energy_code: '01000'}\n"
        "  - {id: ac, model: eastron-sdm120, gateway: gw1, unit: 11, building: b1, energy_code: 01B00, parent: main}\n"
        "  - {id: wrong, model: eastron-sdm120, gateway: gw1, unit: 12, building: b1, energy_code: '02000'}\n"
        "  - {id: orphan, model: eastron-sdm120, gateway: gw1, unit: 13, building: b1, parent: nope}\n"
        "  - {id: loop-a, model: eastron-sdm120, gateway: gw1, unit: 14, building: b1, parent: loop-b}\n"
        "  - {id: loop-b, model: eastron-sdm120, gateway: gw1, unit: 15, building: b1, parent: loop-a}\n"
        "  - {id: tap, model: mqtt-water-meter, topic: t/tap, building: b1, parent: main}\n"
        "  - {id: lamp, model: modbus-lighting-4ch, gateway: gw1, unit: 16, building: b1, energy_code: 01A00}\n"
        "  - {id: bad-code, model: eastron-sdm120, gateway: gw1, unit: 17, building: b1, energy_code: 02A00}\n"
        "rooms:",
    ) + (
        "buildings:\n  - {id: b1, name: Dorm 1, floor_area_m2: 5200, occupants: 480}\n  - {id: b2, floor_area_m2: -3}\n"
    )
    path = write(tmp_path, text)
    errors = errors_of(path)

    def at(device: str) -> int:
        return line_of(text, f"id: {device},")

    assert (
        f"{path}:{at('wrong')}: devices[3].energy_code: 02000 is not a code for electricity (those start 01)" in errors
    )
    assert f"{path}:{at('orphan')}: devices[4].parent: unknown device 'nope'" in errors
    assert (
        f"{path}:{at('loop-a')}: devices[5].parent: the metering tree goes round: loop-a -> loop-b -> loop-a" in errors
    )
    assert not any(f":{at('loop-b')}:" in e for e in errors), errors  # one cycle, said once
    assert f"{path}:{at('tap')}: devices[7].parent: 'main' meters 01000, 'tap' meters 02000" in errors
    assert (
        f"{path}:{at('lamp')}: devices[8].energy_code: a modbus-lighting-4ch device meters no energy: no code" in errors
    )
    assert any(e.startswith(f"{path}:{at('bad-code')}: devices[9].energy_code") and "only electricity" in e
               for e in errors), errors  # fmt: skip
    assert any(e.startswith(f"{path}:{line_of(text, 'id: b2,')}: buildings[1].floor_area_m2") for e in errors), errors
    assert not any(f":{at('ac')}:" in e or f":{at('main')}:" in e for e in errors), errors


def test_energy_classification_defaults_to_the_kind(tmp_path: Path) -> None:
    text = MINIMAL.replace("rooms:", "  - {id: tap, model: mqtt-water-meter, topic: t/tap, building: b1}\nrooms:")
    inv = load_inventory(write(tmp_path, text + "buildings: [{id: b1, floor_area_m2: 5200, occupants: 480}]\n"))
    assert inv.energy_code(inv.devices["m1"]) == "01000" and inv.energy_code(inv.devices["tap"]) == "02000"
    assert inv.buildings["b1"].floor_area_m2 == 5200
