"""Repair orders through the API: a student reports for their own room, the worker of the owning team
gets it and works it, staff see everything; every role rule is checked."""

from __future__ import annotations

import httpx

from tests.api_client import sign_in


async def test_a_reported_problem_goes_to_the_team_and_is_worked_to_closure(client: httpx.AsyncClient) -> None:
    alice, bob = await sign_in(client, "alice"), await sign_in(client, "bob")
    wang, li = await sign_in(client, "wang"), await sign_in(client, "li")
    body = {"title": "socket sparks", "category": "electrical", "room": "D1-101", "priority": "urgent",
            "description": "the socket by the desk sparks when a charger goes in"}  # fmt: skip
    created = await client.post("/api/v1/repairs", json=body, headers=alice)
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["number"].startswith("R") and order["building"] == "dorm-1" and order["floor"] == 1
    assert order["priority"] == "high"  # students cannot make a report urgent
    assert order["assignee"] == "wang" and order["status"] == "assigned" and order["reporter"] == "alice"
    url = f"/api/v1/repairs/{order['id']}"

    # Another student sees nothing of it, and cannot report in a room that is not theirs.
    assert (await client.get(url, headers=bob)).status_code == 404
    assert (await client.get("/api/v1/repairs", headers=bob)).json() == []
    other_room = await client.post("/api/v1/repairs", json={**body, "room": "D1-101"}, headers=bob)
    assert other_room.status_code == 403
    # Nor about another room's device, with or without a room given.
    report = {"title": "meter blinks", "category": "meter"}
    for device in ("d1-101-meter", "d1-101-relay"):
        for extra in ({}, {"room": "D1-102"}):
            answer = await client.post("/api/v1/repairs", json={**report, "device": device, **extra}, headers=bob)
            assert answer.status_code == 403, (device, extra, answer.text)
    mixed = await client.post("/api/v1/repairs", json={**report, "device": "d1-102-meter", "room": "D1-101"},
                              headers=li)  # fmt: skip
    assert mixed.status_code == 422 and "is in room 'D1-102'" in mixed.text
    own = await client.post("/api/v1/repairs", json={**report, "device": "d1-102-meter"}, headers=bob)
    assert own.status_code == 201, own.text
    corridor = {"title": "corridor dark", "category": "lighting", "device": "d1-f1-corridor-lights"}
    assert (await client.post("/api/v1/repairs", json=corridor, headers=bob)).status_code == 201  # a public place
    bad = await client.post("/api/v1/repairs", json={**body, "category": "magic"}, headers=alice)
    assert bad.status_code == 422 and "unknown category 'magic'" in bad.text

    # The reporter cannot do the worker's part; the worker does it.
    assert (await client.post(f"{url}/start", headers=alice)).status_code == 403
    started = await client.post(f"{url}/start", headers=wang)
    assert started.status_code == 200 and started.json()["status"] == "in_progress"
    assert (await client.post(f"{url}/notes", json={"text": "new socket fitted"}, headers=wang)).status_code == 200
    premature = await client.post(f"{url}/close", headers=alice)
    assert premature.status_code == 409 and "cannot be closed" in premature.text
    resolved = await client.post(f"{url}/resolve", json={"reason": "socket replaced"}, headers=wang)
    assert resolved.json()["status"] == "resolved"
    assert (await client.post(f"{url}/rating", json={"stars": 5}, headers=wang)).status_code == 403
    assert (await client.post(f"{url}/rating", json={"stars": 5}, headers=alice)).json()["rating"] == 5
    assert (await client.post(f"{url}/close", headers=alice)).json()["status"] == "closed"
    events = (await client.get(f"{url}/events", headers=alice)).json()
    assert [e["kind"] for e in events] == ["created", "assigned", "started", "note", "resolved", "rated", "closed"]
    assert [e["actor"] for e in events][:3] == ["alice", "houqin", "wang"]

    stats = await client.get("/api/v1/repairs/stats", headers=li)
    assert stats.status_code == 200
    by_worker = {row["key"]: row for row in stats.json()["by_worker"]}
    assert by_worker["wang"]["resolved"] == 1 and by_worker["wang"]["median_hours_to_resolve"] is not None
    assert (await client.get("/api/v1/repairs/stats", headers=wang)).status_code == 403


async def test_staff_assign_and_cancel_and_workers_see_their_own(client: httpx.AsyncClient) -> None:
    li, wang, alice = await sign_in(client, "li"), await sign_in(client, "wang"), await sign_in(client, "alice")
    body = {"title": "leaking pipe in the boiler room", "category": "plumbing", "building": "dorm-2"}
    leak = await client.post("/api/v1/repairs", json=body, headers=li)
    order = leak.json()
    assert order["team"] == "plumbing" and order["assignee"] is None and order["status"] == "open"
    url = f"/api/v1/repairs/{order['id']}"
    assert (await client.get(url, headers=wang)).status_code == 404  # another team's unassigned order
    assert (await client.post(f"{url}/assign", json={"username": "wang"}, headers=wang)).status_code == 403
    assigned = await client.post(f"{url}/assign", json={"username": "wang"}, headers=li)
    assert assigned.json()["assignee"] == "wang"
    mine = await client.get("/api/v1/repairs", params={"status": "assigned"}, headers=wang)
    assert [o["id"] for o in mine.json()] == [order["id"]]
    student_refused = await client.post(f"{url}/assign", json={"username": "alice"}, headers=li)
    assert student_refused.status_code == 409 and "not an active maintenance worker" in student_refused.text
    assert (await client.post(f"{url}/cancel", json={"reason": ""}, headers=li)).status_code == 409
    cancelled = await client.post(f"{url}/cancel", json={"reason": "reported twice"}, headers=li)
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.get("/api/v1/faults", headers=alice)).status_code == 403
    assert (await client.get("/api/v1/faults", params={"state": "active"}, headers=li)).json() == []


async def test_input_json_cannot_carry_back_is_refused_with_a_4xx(client: httpx.AsyncClient) -> None:
    """A lone surrogate in a title and NaN for an amount: the answer is a 422 with a message, never a 500."""
    alice = await sign_in(client, "alice")
    headers = {**alice, "Content-Type": "application/json"}
    lone = b'{"title": "a\\ud800b", "category": "electrical", "room": "D1-101"}'
    answer = await client.post("/api/v1/repairs", content=lone, headers=headers)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "title"], answer.text
    assert (await client.get("/api/v1/repairs", headers=alice)).json() == []  # nothing was opened
    nan = b'{"amount_fen": NaN, "provider": "sandbox"}'
    topup = await client.post("/api/v1/rooms/D1-101/topups", content=nan,
                              headers={**headers, "Idempotency-Key": "nan-topup-1"})  # fmt: skip
    assert topup.status_code == 422 and topup.json()["detail"][0]["loc"] == ["body", "amount_fen"], topup.text
