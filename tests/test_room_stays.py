"""Shared rooms (SQLite and PostgreSQL): staff record who lives on which bed; the month is split by
bed-days, each day between who lived there, adding up exactly; a leaving student gets a statement of what
they used and paid and keeps it after they lose the room's pages; the year-end refund pays the balance
back once, with who, to whom and why."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from houqin.billing.ledger import ensure_wallets, post
from houqin.billing.statement import DayTotals
from houqin.billing.stays import Stay, StayError, bed_day_shares, move_in
from houqin.inventory import Inventory
from houqin.store import Database
from houqin.store.tables import EntryKind, PaymentOrder, PaymentState, RoomStay, User
from tests.api_client import sign_in
from tests.test_room_policy import SHANGHAI


def test_bed_day_shares_add_up_and_follow_who_lived_there() -> None:
    rng = random.Random(7)
    days = [DayTotals(date(2026, 11, d), kwh_charged=rng.randint(0, 9000) / 1000, kwh_free=rng.randint(0, 999) / 1000,
                      charged_fen=rng.randint(0, 700)) for d in range(1, 31)]  # fmt: skip
    stays = [Stay(1, "alice", 1, date(2026, 9, 1), None), Stay(2, "bob", 2, date(2026, 11, 16), date(2026, 11, 25)),
             Stay(3, "carol", 3, date(2026, 11, 28), None)]  # fmt: skip
    shares = bed_day_shares(days, stays)
    assert sum(share.cost_fen for share in shares) == sum(day.charged_fen for day in days)
    assert sum(share.kwh_milli for share in shares) == sum(round((d.kwh_charged + d.kwh_free) * 1000) for d in days)
    alice, bob, carol, vacant = shares
    assert (alice.bed_days, bob.bed_days, carol.bed_days) == (30, 9, 3)
    alone = sum(day.charged_fen for day in days if day.day.day < 16 or 25 <= day.day.day < 28)
    together = [day.charged_fen for day in days if 16 <= day.day.day < 25 or day.day.day >= 28]
    assert alice.cost_fen + bob.cost_fen + carol.cost_fen == alone + sum(together)
    assert abs(bob.cost_fen - sum(fen / 2 for fen in together[:9])) <= 9  # at most a fen a day from half
    assert vacant.stay is None and vacant.cost_fen == 0
    nobody = bed_day_shares(days, [Stay(4, "dan", 1, date(2026, 11, 20), None)])
    assert nobody[-1].cost_fen == sum(day.charged_fen for day in days if day.day.day < 20)


async def test_moves_shares_statements_and_the_year_end_refund(client: httpx.AsyncClient, database: Database) -> None:
    staff, alice, bob = [await sign_in(client, who) for who in ("li", "alice", "bob")]
    await ensure_wallets(database, ["D1-101"])
    async with database.session() as session:
        await post(session, "D1-101", EntryKind.TOPUP, 10_000, datetime(2026, 10, 20, tzinfo=UTC), key="t0",
                   cause="test")  # fmt: skip
        for day in range(1, 31):  # 1 kWh and 56 fen a day, charged at noon
            noon = datetime(2026, 11, day, 12, tzinfo=SHANGHAI)
            await post(session, "D1-101", EntryKind.CHARGE, -56, noon, key=f"c{day}", cause="test", kwh=1.0)
        paid_at = datetime(2026, 11, 20, tzinfo=UTC)
        order = {
            "room": "D1-101",
            "provider": "sandbox",
            "amount_fen": 2000,
            "state": PaymentState.PAID,
            "requested_by": "bob",
            "idempotency_key": "bob-1",
            "created_at": paid_at,
            "paid_at": paid_at,
        }
        session.add(PaymentOrder(**order))
        await session.commit()

    stays = "/api/v1/rooms/D1-101/stays"
    answer = await client.post(stays, json={"username": "alice", "bed": 1, "moved_in": "2026-11-01"}, headers=staff)
    assert answer.status_code == 201, answer.text
    moved = await client.post(stays, json={"username": "bob", "bed": 2, "moved_in": "2026-11-16"}, headers=staff)
    assert moved.status_code == 201, moved.text
    for body, code, why in (
        ({"username": "alice", "bed": 3, "moved_in": "2026-11-20"}, 409, "lives in room D1-101"),
        ({"username": "root", "bed": 3, "moved_in": "2026-11-20"}, 422, "not a student"),
        ({"username": "nobody", "bed": 3, "moved_in": "2026-11-20"}, 404, "no account"),
        ({"username": "alice", "bed": 9, "moved_in": "2026-11-20"}, 422, "beds 1 to 4"),
        ({"username": "alice", "bed": 1, "moved_in": str(date.today() + timedelta(days=3))}, 422, "future"),
    ):
        answer = await client.post(stays, json=body, headers=staff)
        assert answer.status_code == code and why in answer.text, answer.text
    assert (await client.post(stays, json={"username": "bob", "bed": 3, "moved_in": "2026-11-20"},
                              headers=alice)).status_code == 403  # fmt: skip

    shares = (await client.get("/api/v1/rooms/D1-101/shares?month=2026-11", headers=alice)).json()
    assert shares["split"] == "bed_days" and shares["cost_fen"] == 30 * 56
    by_name = {share["student"]: share for share in shares["shares"]}
    assert by_name["alice"]["bed_days"] == 30 and by_name["bob"]["bed_days"] == 15
    assert by_name["bob"]["cost_fen"] == 15 * 28 and by_name["alice"]["cost_fen"] == 15 * 56 + 15 * 28
    assert by_name["bob"]["kwh"] == 7.5 and by_name[None]["cost_fen"] == 0
    assert sum(share["cost_fen"] for share in shares["shares"]) == shares["cost_fen"]

    bob_stay = moved.json()["id"]
    answer = await client.post(f"{stays}/{bob_stay}/move-out", json={"moved_out": "2026-11-25"}, headers=staff)
    assert answer.status_code == 200, answer.text
    statement = answer.json()
    assert statement["months"] == [{"month": "2026-11", "bed_days": 9, "kwh": 4.5, "cost_fen": 9 * 28}]
    assert statement["used_fen"] == 252 and statement["paid_fen"] == 2000
    again = await client.post(f"{stays}/{bob_stay}/move-out", json={"moved_out": "2026-11-26"}, headers=staff)
    assert again.status_code == 409
    assert (await client.get("/api/v1/rooms/D1-101/wallet", headers=bob)).status_code == 403  # no longer his room
    kept = await client.get(f"{stays}/{bob_stay}/statement", headers=bob)
    assert kept.status_code == 200 and kept.json() == statement
    assert (await client.get(f"{stays}/{bob_stay}/statement", headers=alice)).status_code == 403
    listed = (await client.get(stays, headers=alice)).json()
    assert [(s["student"], s["moved_out"]) for s in listed] == [("alice", None), ("bob", "2026-11-25")]

    refund = "/api/v1/rooms/D1-101/refund-balance"
    body = {"to": "alice (cash at the dorm office)", "reason": "end of the school year"}
    key = {"Idempotency-Key": "refund-2027-07"}
    assert (await client.post(refund, json=body, headers={**alice, **key})).status_code == 403
    paid = await client.post(refund, json=body, headers={**staff, **key})
    assert paid.status_code == 201, paid.text
    entry = paid.json()
    assert entry["kind"] == "refund" and entry["amount_fen"] == -(10_000 - 30 * 56) and entry["balance_after_fen"] == 0
    assert "alice (cash" in entry["note"] and entry["cause"] == "refund:li"
    twice = await client.post(refund, json=body, headers={**staff, **key})
    assert twice.status_code == 201 and twice.json()["id"] == entry["id"]
    other = await client.post(refund, json={**body, "to": "bob"}, headers={**staff, **key})
    assert other.status_code == 409 and "different refund" in other.text
    empty = await client.post(refund, json=body, headers={**staff, "Idempotency-Key": "refund-again"})
    assert empty.status_code == 409 and "nothing to refund" in empty.text
    wallet = (await client.get("/api/v1/rooms/D1-101/wallet", headers=staff)).json()
    assert wallet["balance_fen"] == 0


async def test_two_move_ins_racing_for_one_bed_leave_one_stay(
    client: httpx.AsyncClient, database: Database, demo_inventory: Inventory
) -> None:
    """Both pass the checks before either commits: the database keeps one open stay per bed and per
    student, and the second gets the conflict, not a second stay."""
    room, day = demo_inventory.rooms["D1-101"], date(2026, 11, 2)
    async with database.session() as first, database.session() as second:
        alice = (await first.execute(select(User).where(User.username == "alice"))).scalar_one()
        bob = (await second.execute(select(User).where(User.username == "bob"))).scalar_one()
        await move_in(first, room, alice, 3, day, day, "li")  # flushed, not committed
        racing = asyncio.create_task(move_in(second, room, bob, 3, day, day, "zhang"))
        await asyncio.sleep(0.3)  # the second is past its checks and waits on the first's insert
        await first.commit()
        with pytest.raises(StayError) as raised:
            await racing
        assert raised.value.conflict
        await second.rollback()
        again = asyncio.create_task(move_in(second, room, alice, 4, day, day, "zhang"))
        with pytest.raises(StayError):
            await again  # alice lives on bed 3 now
    async with database.session() as session:
        stays = (await session.execute(select(RoomStay).where(RoomStay.moved_out.is_(None)))).scalars().all()
    assert [(stay.bed, stay.user_id) for stay in stays] == [(3, alice.id)]
