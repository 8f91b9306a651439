"""What the web pages need from the API beyond the domain routers: the campus facts, workers to assign,
rooms with their balances, and photos on repair orders (stored in SQLite and PostgreSQL alike)."""

from __future__ import annotations

import httpx

from tests.api_client import sign_in
from tests.images import png


async def test_the_site_tells_each_user_what_they_may_use(client: httpx.AsyncClient) -> None:
    alice, zhao, li = [await sign_in(client, name) for name in ("alice", "zhao", "li")]
    student = (await client.get("/api/v1/site", headers=alice)).json()
    assert student["timezone"] == "Asia/Shanghai"
    assert "campus_card" not in student["payment_methods"]  # only a cashier records counter payments
    assert "campus_card" in (await client.get("/api/v1/site", headers=zhao)).json()["payment_methods"]
    tariffs = {tariff["id"]: tariff for tariff in student["tariffs"]}
    assert all(t["min_topup_fen"] <= t["max_topup_fen"] for t in tariffs.values())
    assert {"electrical", "plumbing"} <= set(student["repair_categories"])
    assert "dorm-1" in student["buildings"]
    # No Grafana configured: no links, for anyone.
    assert (await client.get("/api/v1/site", headers=li)).json()["dashboards"] == []
    assert (await client.get("/api/v1/site")).status_code == 401


async def test_staff_list_workers_and_rooms_with_balances(client: httpx.AsyncClient) -> None:
    alice, li, wang = [await sign_in(client, name) for name in ("alice", "li", "wang")]
    workers = (await client.get("/api/v1/users?role=worker", headers=li)).json()
    assert [(w["username"], w["team"]) for w in workers] == [("wang", "electrical")]
    assert "password_hash" not in workers[0]
    assert (await client.get("/api/v1/users", headers=wang)).status_code == 403
    assert (await client.get("/api/v1/users", headers=alice)).status_code == 403

    rooms = (await client.get("/api/v1/rooms?wallets=true", headers=li)).json()
    assert len(rooms) > 2 and all(r["state"] in {"normal", "low", "cut_off", "tripped"} for r in rooms)
    assert all(isinstance(r["balance_fen"], int) for r in rooms)
    plain = (await client.get("/api/v1/rooms", headers=li)).json()
    assert plain[0]["balance_fen"] is None
    own = (await client.get("/api/v1/rooms?wallets=true", headers=alice)).json()
    assert [r["id"] for r in own] == ["D1-101"]


async def test_photos_on_a_repair_order(client: httpx.AsyncClient) -> None:
    alice, bob, wang, li = [await sign_in(client, name) for name in ("alice", "bob", "wang", "li")]
    body = {"title": "cracked window", "category": "electrical", "room": "D1-101"}
    order = (await client.post("/api/v1/repairs", json=body, headers=alice)).json()
    url = f"/api/v1/repairs/{order['id']}/photos"

    added = await client.post(url, files={"photo": ("window.png", png(), "image/png")}, headers=alice)
    assert added.status_code == 201, added.text
    photo = added.json()
    assert photo["content_type"] == "image/png" and photo["uploaded_by"] == "alice"
    # The worker it went to sees it, byte for byte; another student learns nothing of it.
    image = await client.get(f"{url}/{photo['id']}", headers=wang)
    assert image.status_code == 200 and image.content == png() and image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(f"{url}/{photo['id']}", headers=bob)).status_code == 404
    assert (await client.get(url, headers=bob)).status_code == 404
    assert (await client.post(url, files={"photo": ("x.png", png(), "image/png")}, headers=bob)).status_code == 404

    # What it claims to be does not matter: the bytes do.
    fake = {"photo": ("x.png", b"<script>alert(1)</script>", "image/png")}
    script = await client.post(url, files=fake, headers=alice)
    assert script.status_code == 415 and "JPEG, PNG or WebP" in script.text
    huge = b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024)
    too_big = await client.post(url, files={"photo": ("big.jpg", huge, "image/jpeg")}, headers=alice)
    assert too_big.status_code == 413
    listed = (await client.get(url, headers=li)).json()
    assert [p["id"] for p in listed] == [photo["id"]]
    events = (await client.get(f"/api/v1/repairs/{order['id']}/events", headers=alice)).json()
    assert events[-1]["kind"] == "photo" and events[-1]["actor"] == "alice"
    assert (await client.get(f"{url}/999999", headers=li)).status_code == 404

    # A finished order takes no more photos.
    await client.post(f"/api/v1/repairs/{order['id']}/cancel", json={"reason": "duplicate"}, headers=li)
    late = await client.post(url, files={"photo": ("late.png", png(), "image/png")}, headers=alice)
    assert late.status_code == 409 and "no more photos" in late.text


async def test_staff_get_links_to_grafana_when_it_is_configured(client: httpx.AsyncClient) -> None:
    alice, li = [await sign_in(client, name) for name in ("alice", "li")]
    settings = client._transport.app.state.context.services.settings  # type: ignore[attr-defined]
    settings.grafana_url = "http://grafana.campus:3000"
    try:
        links = (await client.get("/api/v1/site", headers=li)).json()["dashboards"]
        assert len(links) == 6 and all(link["url"].startswith("http://grafana.campus:3000/d/houqin-") for link in links)
        assert (await client.get("/api/v1/site", headers=alice)).json()["dashboards"] == []
    finally:
        settings.grafana_url = None
