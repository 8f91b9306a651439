"""The schedules API: who may do what, validation with named entries, the calendar import, the preview,
overrides and emergency broadcasts that queue their commands at once, and the command audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from tests.api_client import sign_in

LIBRARY = {
    "name": "Library evenings",
    "zone": "library",
    "day_types": ["school_day", "exam_day"],
    "entries": [
        {"at": "08:00", "action": "on"},
        {"at": "22:00", "action": "dim", "level": 40, "name": "closing soon"},
        {"at": "22:30", "action": "off"},
    ],
}


async def test_only_staff_change_schedules_and_anyone_signed_in_reads_the_calendar(client: httpx.AsyncClient) -> None:
    alice = await sign_in(client, "alice")
    assert (await client.post("/api/v1/schedules", json=LIBRARY, headers=alice)).status_code == 403
    assert (await client.get("/api/v1/zones", headers=alice)).status_code == 403
    emergency = {"programme": "evacuate", "duration_s": 60}
    assert (await client.post("/api/v1/broadcast/emergency", json=emergency, headers=alice)).status_code == 403
    assert (await client.get("/api/v1/calendar", headers=alice)).status_code == 200
    assert (await client.get("/api/v1/calendar")).status_code == 401


async def test_schedules_are_validated_stored_and_previewed(client: httpx.AsyncClient) -> None:
    staff = await sign_in(client, "li")
    bad = {**LIBRARY, "entries": [{"at": "22:00", "action": "on"}, {"at": "22:00", "action": "off", "name": "x"}]}
    answer = await client.post("/api/v1/schedules", json=bad, headers=staff)
    assert answer.status_code == 422
    assert [problem["msg"] for problem in answer.json()["detail"]] == [
        "entries #1 (22:00 on) and #2 'x' (22:00 off) set different states at the same moment"
    ]
    dim_corridor = {**LIBRARY, "zone": "dorm-1-corridors"}
    answer = await client.post("/api/v1/schedules", json=dim_corridor, headers=staff)
    assert answer.status_code == 422 and "cannot dim" in answer.json()["detail"][0]["msg"]
    garbage = {**LIBRARY, "entries": [{"at": "sunset+999", "action": "on"}]}
    assert (await client.post("/api/v1/schedules", json=garbage, headers=staff)).status_code == 422

    created = await client.post("/api/v1/schedules", json=LIBRARY, headers=staff)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["updated_by"] == "li" and len(schedule["entries"]) == 3
    assert (await client.post("/api/v1/schedules", json=LIBRARY, headers=staff)).status_code == 409
    replaced = await client.put(
        f"/api/v1/schedules/{schedule['id']}", json={**LIBRARY, "enabled": False}, headers=staff
    )
    assert replaced.status_code == 200 and replaced.json()["enabled"] is False
    await client.put(f"/api/v1/schedules/{schedule['id']}", json=LIBRARY, headers=staff)
    assert [s["name"] for s in (await client.get("/api/v1/schedules?zone=library", headers=staff)).json()] == [
        "Library evenings"
    ]

    # A Monday in term: on at 08:00, dimmed at 22:00, off at 22:30, in the campus's local time; before
    # 08:00 the zone is off because Friday's 22:30 entry still holds.
    preview = await client.get(
        "/api/v1/schedules/preview",
        headers=staff,
        params={"zone": "library", "from": "2026-09-07T00:00:00+08:00", "to": "2026-09-08T00:00:00+08:00"},
    )
    assert preview.status_code == 200, preview.text
    segments = [(s["start"][11:16], s["state"], s["level"], s["layer"]) for s in preview.json()["segments"]]
    assert segments == [
        ("00:00", "off", None, "regular"),
        ("08:00", "on", None, "regular"),
        ("22:00", "dim", 40, "regular"),
        ("22:30", "off", None, "regular"),
    ]
    naive = await client.get(
        "/api/v1/schedules/preview",
        headers=staff,
        params={"zone": "library", "from": "2026-09-07T00:00", "to": "2026-09-08T00:00"},
    )
    assert naive.status_code == 422
    assert (await client.delete(f"/api/v1/schedules/{schedule['id']}", headers=staff)).status_code == 204
    assert (await client.get(f"/api/v1/schedules/{schedule['id']}", headers=staff)).status_code == 404


async def test_the_calendar_is_imported_edited_and_resolved(client: httpx.AsyncClient) -> None:
    staff = await sign_in(client, "li")
    wrong = (
        "terms:\n  - {name: autumn, start: 2026-09-01, end: 2027-01-22}\n"
        "days:\n  - {date: 2026-10-10, type: school_day, follows: someday}\n"
    )
    answer = await client.post("/api/v1/calendar/import", content=wrong, headers=staff)
    assert answer.status_code == 422 and answer.json()["detail"][0]["msg"].startswith("calendar:4: days[0].follows:")
    good = wrong.replace("someday", "monday") + "  - {date: 2026-10-01, until: 2026-10-07, type: holiday}\n"
    answer = await client.post("/api/v1/calendar/import", content=good, headers=staff)
    assert answer.json() == {"terms": 1, "days": 8}
    days = (await client.get("/api/v1/calendar?from=2026-10-07&to=2026-10-11", headers=staff)).json()["days"]
    assert [(d["date"][8:], d["type"], d["timetable"]) for d in days] == [
        ("07", "holiday", "wednesday"),
        ("08", "school_day", "thursday"),
        ("09", "school_day", "friday"),
        ("10", "school_day", "monday"),  # the make-up Saturday runs Monday's timetable
        ("11", "weekend", "sunday"),
    ]
    put = await client.put("/api/v1/calendar/days/2026-10-09", json={"type": "sports_day"}, headers=staff)
    assert put.status_code == 200 and put.json()["type"] == "sports_day"
    assert (await client.delete("/api/v1/calendar/days/2026-10-09", headers=staff)).status_code == 204
    assert (await client.delete("/api/v1/calendar/days/2026-10-09", headers=staff)).status_code == 404
    february = (await client.get("/api/v1/calendar?from=2027-02-01&to=2027-02-01", headers=staff)).json()["days"]
    assert february[0]["type"] == "vacation"  # after the only term


async def test_overrides_and_emergency_broadcasts_queue_their_commands_at_once(client: httpx.AsyncClient) -> None:
    staff = await sign_in(client, "li")
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    answer = await client.post(
        "/api/v1/zones/library/override",
        json={"action": "dim", "level": 40, "until": until, "reason": "exam revision"},
        headers=staff,
    )
    assert answer.status_code == 201, answer.text
    commands = (await client.get("/api/v1/commands?zone=library", headers=staff)).json()
    assert sorted((c["device"], c["action"], c["arguments"]["level"]) for c in commands) == [
        ("library-lights-1", "dim", 40),
        ("library-lights-2", "dim", 40),
        ("library-lights-3", "dim", 40),
    ]
    zone = (await client.get("/api/v1/zones/library", headers=staff)).json()
    assert zone["override"]["reason"] == "exam revision" and zone["state"]["layer"] == "override"
    assert {o["last_state"] for o in zone["outputs"]} == {"queued"}
    assert (await client.delete("/api/v1/zones/library/override", headers=staff)).status_code == 204
    assert (await client.delete("/api/v1/zones/library/override", headers=staff)).status_code == 404
    wrong = await client.post(
        "/api/v1/zones/dorm-1-corridors/override", json={"action": "dim", "level": 10, "until": until}, headers=staff
    )
    assert wrong.status_code == 422 and "cannot dim" in wrong.text
    naive = await client.post(
        "/api/v1/zones/library/override", json={"action": "on", "until": "2030-01-01T00:00"}, headers=staff
    )
    assert naive.status_code == 422

    emergency = await client.post(
        "/api/v1/broadcast/emergency",
        json={"programme": "evacuate", "duration_s": 120, "reason": "fire drill"},
        headers=staff,
    )
    assert emergency.status_code == 201, emergency.text
    assert emergency.json()["zones"] == ["campus-pa", "teaching-bells"]
    plays = (await client.get("/api/v1/commands?source=emergency", headers=staff)).json()
    # teaching-a-pa is in both zones and gets the programme once
    assert sorted(c["device"] for c in plays) == ["dorm-1-pa", "dorm-2-pa", "teaching-a-pa"]
    assert {c["arguments"]["programme"] for c in plays} == {"evacuate"}
    ended = await client.delete(f"/api/v1/broadcast/emergency/{emergency.json()['id']}", headers=staff)
    assert ended.status_code == 200 and ended.json()["ended_by"] == "li"
    stops = (await client.get("/api/v1/commands?source=emergency&state=queued", headers=staff)).json()
    assert sorted(c["action"] for c in stops) == ["stop", "stop", "stop"]  # the queued plays were superseded
    not_broadcast = await client.post(
        "/api/v1/broadcast/emergency", json={"programme": "x", "duration_s": 60, "zones": ["library"]}, headers=staff
    )
    assert not_broadcast.status_code == 422
    zones = (await client.get("/api/v1/zones", headers=staff)).json()
    assert {z["id"] for z in zones} >= {"library", "campus-pa", "dorm-1-corridors"}


def alias_bomb(levels: int) -> str:
    """The "billion laughs": each level nine aliases of the one before (9**levels values from ~40 bytes a
    level)."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


async def test_hostile_calendar_files_are_refused_at_once(client: httpx.AsyncClient) -> None:
    staff = await sign_in(client, "li")
    for hostile in (alias_bomb(9), "terms: &t [{name: x, start: 2026-09-01, end: 2026-09-02, more: *t}]\n",
                    "[" * 3000 + "]" * 3000):  # fmt: skip
        answer, health = await asyncio.gather(
            client.post("/api/v1/calendar/import", content=hostile, headers=staff), client.get("/healthz")
        )
        assert answer.status_code == 422, answer.text
        assert health.status_code == 200
    answer = await client.post("/api/v1/calendar/import", content=alias_bomb(9), headers=staff)
    assert "aliases (*name) expand to more than 100,000 values" in answer.text
    huge = await client.post("/api/v1/calendar/import", content=b"# " + b"x" * (2 << 20), headers=staff)
    assert huge.status_code == 413 and "at most 1 MiB" in huge.text
    # Anchors that share defaults stay usable.
    shared = ("days:\n  - &holiday {date: 2026-10-01, type: holiday, note: 国庆}\n"
              "  - {<<: *holiday, date: 2026-10-02}\n")  # fmt: skip
    answer = await client.post("/api/v1/calendar/import", content=shared.encode(), headers=staff)
    assert answer.status_code == 200 and answer.json() == {"terms": 0, "days": 2}, answer.text


async def test_a_schedule_changed_and_deleted_at_once_is_a_409_never_a_500(client: httpx.AsyncClient) -> None:
    staff = await sign_in(client, "li")
    outcomes: set[tuple[int, int]] = set()
    for attempt in range(15):
        created = await client.post("/api/v1/schedules", json={**LIBRARY, "name": f"race {attempt}"}, headers=staff)
        url = f"/api/v1/schedules/{created.json()['id']}"
        put, gone = await asyncio.gather(
            client.put(url, json={**LIBRARY, "name": f"race {attempt} renamed"}, headers=staff),
            client.delete(url, headers=staff),
        )
        outcomes.add((put.status_code, gone.status_code))
        assert put.status_code in {200, 404, 409} and gone.status_code == 204, (put.text, gone.text)
        if put.status_code == 409:
            assert "was deleted while it was being changed" in put.json()["detail"]
        assert (await client.get(url, headers=staff)).status_code == 404  # the delete won either way


async def test_dorm_power_schedules_and_overrides(client: httpx.AsyncClient) -> None:
    staff = await sign_in(client, "li")
    nights = {"name": "Dorm 1 nights", "zone": "dorm-1-power", "day_types": ["school_day"],
              "entries": [{"at": "23:30", "until": "06:30", "action": "off"},
                          {"at": "06:30", "action": "limit", "limit_w": 800, "weekdays": ["saturday"]}]}  # fmt: skip
    created = await client.post("/api/v1/schedules", json=nights, headers=staff)
    assert created.status_code == 201, created.text
    assert created.json()["entries"][1] == {"at": "06:30", "action": "limit", "limit_w": 800, "weekdays": ["saturday"]}
    dim = {**nights, "name": "dim", "entries": [{"at": "22:00", "action": "dim", "level": 40}]}
    answer = await client.post("/api/v1/schedules", json=dim, headers=staff)
    assert answer.status_code == 422 and "a dorm_power zone takes limit, off, on" in answer.text
    for entry, why in (
        ({"at": "22:00", "action": "limit"}, "limit needs the power limit"),
        ({"at": "22:00", "action": "off", "limit_w": 500}, "only limit takes a power limit"),
        ({"at": "22:00", "action": "limit", "limit_w": 0}, "greater than or equal to 50"),
    ):
        answer = await client.post("/api/v1/schedules", json={**nights, "entries": [entry]}, headers=staff)
        assert answer.status_code == 422 and why in answer.text, answer.text
    lights = {**LIBRARY, "entries": [{"at": "22:00", "action": "limit", "limit_w": 500}]}
    answer = await client.post("/api/v1/schedules", json=lights, headers=staff)
    assert answer.status_code == 422 and "a lighting zone takes dim, off, on" in answer.text

    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    no_watts = {"action": "limit", "until": until}
    answer = await client.post("/api/v1/zones/dorm-1-power/override", json=no_watts, headers=staff)
    assert answer.status_code == 422
    answer = await client.post("/api/v1/zones/dorm-1-power/override", json={"action": "stop", "until": until},
                               headers=staff)  # fmt: skip
    assert answer.status_code == 422 and "overridden with limit, off, on" in answer.text
    held = {"action": "limit", "limit_w": 400, "until": until, "reason": "exam week"}
    answer = await client.post("/api/v1/zones/dorm-1-power/override", json=held, headers=staff)
    assert answer.status_code == 201, answer.text
    assert answer.json()["level"] == 400
    zone = (await client.get("/api/v1/zones/dorm-1-power", headers=staff)).json()
    assert zone["kind"] == "dorm_power" and len(zone["rooms"]) == 30 and zone["outputs"] == []
    assert (zone["state"]["state"], zone["state"]["level"], zone["state"]["layer"]) == ("limit", 400, "override")
    wallet = (await client.get("/api/v1/rooms/D1-101/wallet", headers=staff)).json()
    assert wallet["night_limit_w"] == 400 and wallet["curfew"] is False
    assert (await client.get("/api/v1/rooms/D2-101/wallet", headers=staff)).json()["night_limit_w"] is None

    off = {"action": "off", "until": until, "reason": "线路检修"}
    assert (await client.post("/api/v1/zones/dorm-1-power/override", json=off, headers=staff)).status_code == 201
    alice = await sign_in(client, "alice")
    wallet = (await client.get("/api/v1/rooms/D1-101/wallet", headers=alice)).json()
    assert wallet["curfew"] is True and wallet["night_limit_w"] is None
    assert wallet["state"] in {"curfew", "cut_off"}
    assert (await client.delete("/api/v1/zones/dorm-1-power/override", headers=staff)).status_code == 204


async def test_a_draft_is_previewed_in_place_of_the_schedule_it_edits(client: httpx.AsyncClient) -> None:
    staff = await sign_in(client, "li")
    saved = {"name": "Dorm 1 nights", "zone": "dorm-1-power", "day_types": ["school_day"],
             "entries": [{"at": "23:30", "until": "06:30", "action": "off"}]}  # fmt: skip
    created = (await client.post("/api/v1/schedules", json=saved, headers=staff)).json()
    monday = {"from": "2026-11-23T00:00:00+08:00", "to": "2026-11-24T00:00:00+08:00"}
    draft = {**saved, "entries": [{"at": "23:00", "until": "07:00", "action": "limit", "limit_w": 300}]}
    edit = {"schedule": draft, "replaces": created["id"], **monday}
    answer = await client.post("/api/v1/schedules/preview", json=edit, headers=staff)
    assert answer.status_code == 200, answer.text
    segments = [(s["start"][11:16], s["end"][11:16], s["state"], s["level"]) for s in answer.json()["segments"]]
    assert segments == [("00:00", "23:00", "on", None), ("23:00", "00:00", "limit", 300)]
    alongside = await client.post("/api/v1/schedules/preview", json={"schedule": {**draft, "name": "new"}, **monday},
                                  headers=staff)  # fmt: skip
    assert [s["state"] for s in alongside.json()["segments"]] == ["on", "limit", "off"]  # the saved one starts later
    stored = await client.get(f"/api/v1/schedules/{created['id']}", headers=staff)
    assert stored.json()["entries"] == saved["entries"]  # a preview saves nothing
    bad = {**draft, "entries": [{"at": "23:00", "action": "dim", "level": 5}]}
    answer = await client.post("/api/v1/schedules/preview", json={"schedule": bad, **monday}, headers=staff)
    assert answer.status_code == 422 and "a dorm_power zone takes" in answer.text
    reversed_window = {"from": monday["to"], "to": monday["from"]}
    answer = await client.post("/api/v1/schedules/preview", json={"schedule": draft, **reversed_window}, headers=staff)
    assert answer.status_code == 422 and "to must be after from" in answer.text
    unknown = {**draft, "zone": "nowhere"}
    answer = await client.post("/api/v1/schedules/preview", json={"schedule": unknown, **monday}, headers=staff)
    assert answer.status_code == 404
    alice = await sign_in(client, "alice")
    answer = await client.post("/api/v1/schedules/preview", json={"schedule": draft, **monday}, headers=alice)
    assert answer.status_code == 403
