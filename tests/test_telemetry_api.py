"""Devices, series and room usage through the API: who may ask, what they get, what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from houqin.inventory import Inventory
from houqin.readings import Reading
from houqin.telemetry.embedded_store import EmbeddedStore
from tests.api_client import sign_in

TZ = ZoneInfo("Asia/Shanghai")


async def feed_room_meter(telemetry: EmbeddedStore, inventory: Inventory, meter: str, day_start: datetime) -> None:
    """A room meter read every 5 minutes over a local day, 0.1 kWh per 5 minutes from 08:00."""
    tags = inventory.device_tags(inventory.devices[meter])
    readings = []
    for step in range(0, 24 * 12):
        ts = day_start + timedelta(minutes=5 * step)
        energy = 500.0 + 0.1 * max(0, step - 8 * 12)
        readings.append(Reading(meter, ts, {"energy": energy, "power": 1200.0, "voltage": 229.5}, tags))
    await telemetry.consume(readings)


async def test_devices_show_online_state_and_latest_values(
    client: httpx.AsyncClient, telemetry: EmbeddedStore, demo_inventory: Inventory
) -> None:
    now = datetime.now(UTC)
    meter = demo_inventory.devices["d1-101-meter"]
    tags = demo_inventory.device_tags(meter)
    health_tags = {**tags, "kind": "device_health", "device_kind": "electricity"}
    await telemetry.consume([
        Reading(meter.id, now - timedelta(seconds=5), {"voltage": 231.0, "energy": 812.5}, tags),
        Reading(meter.id, now - timedelta(seconds=5), {"online": True, "consecutive_failures": 0}, health_tags),
        Reading("d1-102-meter", now, {"online": False, "consecutive_failures": 4},
                {**health_tags, "device": "d1-102-meter"}),
    ])  # fmt: skip
    staff = await sign_in(client, "li")
    listed = (await client.get("/api/v1/devices", params={"kind": "electricity"}, headers=staff)).json()
    by_id = {device["id"]: device for device in listed}
    assert by_id["d1-101-meter"]["online"] is True and by_id["d1-101-meter"]["last_seen"]
    assert by_id["d1-102-meter"]["online"] is False and by_id["d1-102-meter"]["last_seen"] is None
    assert by_id["d1-103-meter"]["online"] is None  # never heard from
    assert all(device["kind"] == "electricity" for device in listed)
    worker = await sign_in(client, "wang")
    detail = (await client.get("/api/v1/devices/d1-101-meter", headers=worker)).json()
    assert detail["fields"] == {"voltage": 231.0, "energy": 812.5} and detail["health"]["online"] is True
    student = await sign_in(client, "alice")
    assert (await client.get("/api/v1/devices", headers=student)).status_code == 403
    assert (await client.get("/api/v1/devices/nope", headers=staff)).status_code == 404


async def test_series_is_for_staff_and_checks_its_parameters(
    client: httpx.AsyncClient, telemetry: EmbeddedStore, demo_inventory: Inventory
) -> None:
    start = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    await feed_room_meter(telemetry, demo_inventory, "d1-101-meter", start)
    staff = await sign_in(client, "li")
    url = "/api/v1/devices/d1-101-meter/series"
    params = {"field": "energy", "start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat(),
              "every": 3600, "agg": "max"}  # fmt: skip
    answer = await client.get(url, params=params, headers=staff)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["unit"] == "kWh" and len(body["points"]) == 24
    assert body["points"][-1]["value"] == 500.0 + 0.1 * (24 * 12 - 1 - 8 * 12)
    refusals = {
        "unknown field": ({"field": "colour"}, "has no field 'colour'"),
        "start after end": ({"end": (start - timedelta(hours=1)).isoformat()}, "start must be before end"),
        "too many points": ({"every": 1}, "at most 10000"),
        "bad aggregate": ({"agg": "median"}, "agg"),
        "no time zone": ({"start": "2026-11-01T00:00:00"}, "needs a time zone"),
    }
    for what, (change, message) in refusals.items():
        refused = await client.get(url, params={**params, **change}, headers=staff)
        assert refused.status_code == 422, what
        assert message in refused.text, (what, refused.text)
    student = await sign_in(client, "alice")
    assert (await client.get(url, params=params, headers=student)).status_code == 403
    worker = await sign_in(client, "wang")
    assert (await client.get(url, params=params, headers=worker)).status_code == 403


async def test_a_student_sees_the_usage_of_their_own_room_only(
    client: httpx.AsyncClient, telemetry: EmbeddedStore, demo_inventory: Inventory
) -> None:
    yesterday = (datetime.now(TZ) - timedelta(days=1)).date()
    day_start = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=TZ)
    room = demo_inventory.rooms["D1-101"]
    await feed_room_meter(telemetry, demo_inventory, room.meter, day_start - timedelta(hours=1))
    alice = await sign_in(client, "alice")
    answer = await client.get("/api/v1/rooms/D1-101/usage", params={"date": yesterday.isoformat()}, headers=alice)
    assert answer.status_code == 200, answer.text
    usage = answer.json()
    assert usage["meter"] == room.meter and len(usage["windows"]) == 24
    hourly = [window["kwh"] for window in usage["windows"]]
    # Fed from 23:00 the day before to 22:55: flat until 07:00, then 0.1 kWh per 5 minutes.
    assert all(kwh == 0 for kwh in hourly[:7]) and abs(hourly[7] - 1.1) < 1e-9
    assert all(abs(kwh - 1.2) < 1e-9 for kwh in hourly[8:23]) and hourly[23] == 0
    assert abs(usage["total_kwh"] - sum(hourly)) < 1e-6
    month = await client.get("/api/v1/rooms/D1-101/usage", params={"period": "month"}, headers=alice)
    assert month.status_code == 200 and len(month.json()["windows"]) >= 28
    assert (await client.get("/api/v1/rooms/D1-102/usage", headers=alice)).status_code == 403
    assert (await client.get("/api/v1/rooms/D1-101/usage", params={"period": "year"}, headers=alice)).status_code == 422
    staff = await sign_in(client, "li")
    assert (await client.get("/api/v1/rooms/D1-102/usage", headers=staff)).status_code == 200


async def test_staff_queue_commands_that_the_model_knows(client: httpx.AsyncClient) -> None:
    staff, student = await sign_in(client, "li"), await sign_in(client, "alice")
    url = "/api/v1/devices/d1-101-relay/commands"
    queued = await client.post(url, json={"command": "relay", "action": "on", "reason": "inspected"}, headers=staff)
    assert queued.status_code == 202, queued.text
    assert queued.json()["state"] == "queued" and queued.json()["requested_by"] == "li"
    again = await client.post(url, json={"command": "relay", "action": "off"}, headers=staff)
    listed = (await client.get(url, headers=staff)).json()
    assert [(c["action"], c["state"]) for c in listed] == [("off", "queued"), ("on", "superseded")]
    assert again.status_code == 202
    wrong = await client.post(url, json={"command": "relay", "action": "explode"}, headers=staff)
    assert wrong.status_code == 422 and "no action 'explode'" in wrong.text
    meter = await client.post("/api/v1/devices/d1-101-meter/commands", json={"command": "relay", "action": "on"},
                              headers=staff)  # fmt: skip
    assert meter.status_code == 422 and "has no command 'relay'" in meter.text
    assert (await client.post(url, json={"command": "relay", "action": "on"}, headers=student)).status_code == 403


async def test_admins_adjust_balances_once_per_key_and_students_see_their_wallet(client: httpx.AsyncClient) -> None:
    root, li, alice = await sign_in(client, "root"), await sign_in(client, "li"), await sign_in(client, "alice")
    url = "/api/v1/rooms/D1-101/adjustments"
    body = {"amount_fen": 2000, "kind": "topup", "reason": "paid at the campus card office"}
    first = await client.post(url, json=body, headers={**root, "Idempotency-Key": "card-office-0001"})
    assert first.status_code == 201, first.text
    again = await client.post(url, json=body, headers={**root, "Idempotency-Key": "card-office-0001"})
    assert again.json()["id"] == first.json()["id"]  # a retry is the same entry
    other = await client.post(
        url, json={**body, "amount_fen": 3000}, headers={**root, "Idempotency-Key": "card-office-0001"}
    )
    assert other.status_code == 409
    assert (await client.post(url, json=body, headers={**li, "Idempotency-Key": "card-office-0002"})).status_code == 403
    assert (await client.post(url, json=body, headers=root)).status_code == 422  # the key is required
    zero = await client.post(url, json={**body, "amount_fen": 0}, headers={**root, "Idempotency-Key": "zero-0000"})
    assert zero.status_code == 422
    wallet = (await client.get("/api/v1/rooms/D1-101/wallet", headers=alice)).json()
    assert wallet["balance_fen"] == 2000 and wallet["state"] == "normal" and wallet["tariff"] == "dorm-standard"
    ledger = (await client.get("/api/v1/rooms/D1-101/ledger", headers=alice)).json()
    assert [(e["kind"], e["amount_fen"], e["balance_after_fen"]) for e in ledger] == [("topup", 2000, 2000)]
    assert (await client.get("/api/v1/rooms/D1-102/wallet", headers=alice)).status_code == 403


async def test_a_meter_read_for_the_first_time_counts_from_its_first_reading(
    client: httpx.AsyncClient, telemetry: EmbeddedStore, demo_inventory: Inventory
) -> None:
    """A new meter first read at 10:20: that hour and that day count from the first reading (partial), the
    hours before have nothing, and the windows add up to the meter's advance."""
    yesterday = (datetime.now(TZ) - timedelta(days=1)).date()
    first_read = datetime(yesterday.year, yesterday.month, yesterday.day, 10, 20, tzinfo=TZ)
    meter = demo_inventory.rooms["D1-101"].meter
    tags = demo_inventory.device_tags(demo_inventory.devices[meter])
    steps = range(0, (24 * 60 - 10 * 60 - 20) // 5)  # every 5 minutes from 10:20 to 23:55
    await telemetry.consume([Reading(meter, first_read + timedelta(minutes=5 * k), {"energy": 42.0 + 0.1 * k}, tags)
                             for k in steps])  # fmt: skip
    alice = await sign_in(client, "alice")
    day = (await client.get("/api/v1/rooms/D1-101/usage", params={"date": yesterday.isoformat()},
                            headers=alice)).json()  # fmt: skip
    windows = day["windows"]
    assert [w["kwh"] for w in windows[:10]] == [None] * 10 and not any(w["partial"] for w in windows[:10])
    assert windows[10]["partial"] is True and abs(windows[10]["kwh"] - 0.7) < 1e-9  # 10:20 to 10:55
    assert all(abs(w["kwh"] - 1.2) < 1e-9 and not w["partial"] for w in windows[11:])
    advance = 0.1 * (len(steps) - 1)
    assert abs(day["total_kwh"] - advance) < 1e-6
    month = (await client.get("/api/v1/rooms/D1-101/usage", params={"date": yesterday.isoformat(), "period": "month"},
                              headers=alice)).json()  # fmt: skip
    [that_day] = [w for w in month["windows"] if datetime.fromisoformat(w["start"]).astimezone(TZ).date() == yesterday]
    assert that_day["partial"] is True and abs(that_day["kwh"] - advance) < 1e-6
