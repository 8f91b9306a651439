"""The API on SQLite and PostgreSQL: sign-in, tokens, roles, a student reaches only their own room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from assembly import ProcessRole, assemble
from houqin.accounts import NewAccount, add_account, get_user, set_password
from houqin.inventory import Inventory
from houqin.settings import Settings
from houqin.store import Database
from houqin.store.tables import Role
from houqin.telemetry.embedded_store import EmbeddedStore
from tests.api_client import PASSWORD, sign_in


async def test_me_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    garbage = await client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert garbage.status_code == 401 and garbage.json()["detail"] == "invalid token"


async def test_wrong_password_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/token", data={"username": "alice", "password": "nope-nope"})
    assert response.status_code == 401 and response.json()["detail"] == "wrong username or password"
    missing = await client.post("/api/v1/auth/token", data={"username": "alice"})
    assert missing.status_code == 422


async def test_me(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me", headers=await sign_in(client, "alice"))
    assert response.status_code == 200
    assert response.json() | {"id": 0} == {
        "id": 0, "username": "alice", "display_name": "", "role": "student", "team": None, "rooms": ["D1-101"],
    }  # fmt: skip


async def test_student_reaches_only_their_own_room(client: httpx.AsyncClient) -> None:
    alice = await sign_in(client, "alice")
    own = await client.get("/api/v1/rooms/D1-101", headers=alice)
    assert own.status_code == 200 and own.json()["meter"] == "d1-101-meter"
    other = await client.get("/api/v1/rooms/D1-102", headers=alice)
    assert other.status_code in {403, 404}
    missing = await client.get("/api/v1/rooms/NOPE", headers=alice)
    assert missing.status_code == other.status_code  # no hint whether a room exists
    listed = await client.get("/api/v1/rooms", headers=alice)
    assert [room["id"] for room in listed.json()] == ["D1-101"]


async def test_staff_reach_every_room_and_workers_none(client: httpx.AsyncClient) -> None:
    staff = await sign_in(client, "li")
    assert (await client.get("/api/v1/rooms/D1-102", headers=staff)).status_code == 200
    assert (await client.get("/api/v1/rooms/NOPE", headers=staff)).status_code == 404
    everything = await client.get("/api/v1/rooms", params={"building": "dorm-2"}, headers=staff)
    assert len(everything.json()) == 30
    worker = await sign_in(client, "wang")
    assert (await client.get("/api/v1/rooms/D1-101", headers=worker)).status_code == 403


async def test_password_change_and_disabling_end_old_tokens(client: httpx.AsyncClient, database: Database) -> None:
    headers = await sign_in(client, "alice")
    async with database.session() as session:
        user = await get_user(session, "alice")
        assert user is not None
        await set_password(session, user, "another-password")
        await session.commit()
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401
    headers = await sign_in(client, "alice", "another-password")
    async with database.session() as session:
        user = await get_user(session, "alice")
        assert user is not None
        user.active = False
        await session.commit()
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_expired_and_forged_tokens_are_refused(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    tokens = app.state.context.tokens
    me = (await client.get("/api/v1/me", headers=await sign_in(client, "li"))).json()
    old = tokens.issue(me["id"], "staff", 0, now=datetime.now(UTC) - timedelta(days=60))
    expired = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {old}"})
    assert expired.status_code == 401 and expired.json()["detail"] == "token expired"
    # A token claiming admin for a staff account (as if signed before a role change) is refused.
    promoted = tokens.issue(me["id"], "admin", 0)
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {promoted}"})).status_code == 401
    import jwt

    forged = jwt.encode({"sub": str(me["id"]), "role": "staff", "ver": 0, "aud": "houqin-api", "iat": 1,
                         "exp": 4102444800}, "x" * 48, algorithm="HS256")  # fmt: skip
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})).status_code == 401


async def test_health_readiness_metrics_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"][0]["name"] == "database"
    await client.get("/api/v1/rooms/D1-101")
    metrics = (await client.get("/metrics")).text
    assert 'houqin_http_requests_total{method="GET",route="/api/v1/rooms/{room_id}",status="401"}' in metrics
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/auth/token" in schema["paths"]


async def test_password_guessing_is_slowed_for_the_guesser_only(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]

    def from_address(address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 40000)), base_url="http://houqin"
        )

    async with from_address("10.1.0.5") as guesser, from_address("10.2.0.9") as phone:
        for _ in range(5):
            response = await guesser.post("/api/v1/auth/token", data={"username": "bob", "password": "guess-guess"})
            assert response.status_code == 401
        # From the guesser's address even the right password waits: the guesser cannot tell when they hit it.
        blocked = await guesser.post("/api/v1/auth/token", data={"username": "BOB", "password": PASSWORD})
        assert blocked.status_code == 429 and 0 < int(blocked.headers["retry-after"]) <= 900
        # Bob on his own phone is not held, nor anyone else behind the guesser's address (a school NAT).
        assert (
            await phone.post("/api/v1/auth/token", data={"username": "bob", "password": PASSWORD})
        ).status_code == 200
        for _ in range(50):
            await guesser.post("/api/v1/auth/token", data={"username": f"user{_}", "password": "guess-guess"})
        answer = await guesser.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
        assert answer.status_code == 200


async def test_fault_injection_is_for_staff_and_only_when_simulating(
    database: Database, demo_inventory: Inventory, telemetry: EmbeddedStore, tmp_path: Path
) -> None:
    async with database.session() as session:
        await add_account(session, NewAccount("li", Role.STAFF, PASSWORD), demo_inventory)
        await add_account(session, NewAccount("alice", Role.STUDENT, PASSWORD, ("D1-101",)), demo_inventory)
        await session.commit()
    # The assembly hands the API the simulated campus when it simulates, and nothing otherwise.
    for simulate, expected in ((True, 200), (False, 404)):
        async with (
            assemble(Settings(data_dir=tmp_path), demo_inventory, roles={ProcessRole.API, ProcessRole.COLLECT},
                     simulate=simulate, listen=False, database=database, telemetry=telemetry) as houqin,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=houqin.app), base_url="http://houqin") as http,
        ):  # fmt: skip
            campus = houqin.simulator
            staff = await sign_in(http, "li")
            body = {"device": "d2-110-meter", "fault": "illegal_appliance"}
            answer = await http.post("/api/v1/simulation/faults", json=body, headers=staff)
            assert answer.status_code == expected, answer.text
            if campus is None:
                continue
            assert answer.json()["faults"] == {"d2-110-meter": ["illegal_appliance"]}
            assert campus.faults["d2-110-meter"] == {"illegal_appliance"}
            student = await sign_in(http, "alice")
            assert (await http.post("/api/v1/simulation/faults", json=body, headers=student)).status_code == 403
            bad = await http.post("/api/v1/simulation/faults", json=body | {"fault": "fire"}, headers=staff)
            assert bad.status_code == 422 and "unknown fault 'fire'" in bad.json()["detail"][0]["msg"]
            ghost = await http.post("/api/v1/simulation/faults", json=body | {"device": "ghost"}, headers=staff)
            assert ghost.status_code == 404
            cleared = await http.post("/api/v1/simulation/faults", json=body | {"active": False}, headers=staff)
            assert cleared.json()["faults"] == {}


async def test_numbers_and_dates_out_of_range_are_refused_at_the_edge(client: httpx.AsyncClient) -> None:
    """Ids past 64 bits, cursors, and days near year 1 or 9999: a 4xx in the declared shape, never a 500."""
    staff, alice = await sign_in(client, "li"), await sign_in(client, "alice")
    huge = 10**24
    asks = [
        ("get", f"/api/v1/repairs/{huge}", staff), ("get", f"/api/v1/repairs/{huge}/events", staff),
        ("get", f"/api/v1/repairs/{huge}/photos", staff), ("post", f"/api/v1/repairs/{huge}/start", staff),
        ("get", f"/api/v1/rooms/D1-101/ledger?before={huge}", alice),
        ("get", f"/api/v1/rooms/D1-101/notices?before=-{huge}", alice),
        ("get", f"/api/v1/schedules/{huge}", staff), ("delete", f"/api/v1/broadcast/emergency/{huge}", staff),
        ("get", "/api/v1/calendar?from=9999-12-31", staff),
        ("get", "/api/v1/rooms/D1-101/usage?date=9999-12-31", alice),
        ("get", "/api/v1/rooms/D1-101/usage?date=0001-01-01", alice),
        ("get", "/api/v1/rooms/D1-101/statement?month=9999-12", alice),
        ("get", "/api/v1/rooms/D1-101/statement?month=0000-01", alice),
        ("get", "/api/v1/schedules/preview?zone=library&from=9999-12-30T00:00Z&to=9999-12-31T00:00Z", staff),
        ("get", "/api/v1/commands?from=0001-01-01T00:00:00%2B14:00", staff),
        ("get", "/api/v1/schedules/firings?from=0001-01-02T00:00Z&to=0001-01-01T00:00Z", staff),
    ]  # fmt: skip
    for method, url, headers in asks:
        answer = await client.request(method, url, headers=headers)
        assert answer.status_code in {404, 422}, (url, answer.status_code, answer.text)
        if answer.status_code == 422:
            assert all({"type", "loc", "msg"} <= problem.keys() for problem in answer.json()["detail"]), answer.text
    floor = await client.post("/api/v1/repairs", json={"title": "high up", "category": "electrical", "floor": huge},
                              headers=staff)  # fmt: skip
    assert floor.status_code == 422 and floor.json()["detail"][0]["loc"] == ["body", "floor"]
    reversed_range = await client.get("/api/v1/calendar?from=2026-02-01&to=2026-01-01", headers=staff)
    assert reversed_range.json() == {"detail": [{"type": "value_error", "loc": [], "msg": "to is before from"}]}
