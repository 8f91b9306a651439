"""The SQL store on SQLite and PostgreSQL: migrations match the tables, accounts behave."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from houqin.accounts import AccountError, NewAccount, add_account, authenticate, get_user, import_accounts, set_password
from houqin.inventory import Inventory
from houqin.store import Database, current_revision, head_revision, upgrade_database
from houqin.store.tables import Base, Role, User
from tests.conftest import create_pg_database
from tests.servers import Postgres


async def test_migrations_reach_head_and_match_the_tables(database: Database) -> None:
    assert await current_revision(database) == head_revision()
    await upgrade_database(database)  # a second upgrade is a no-op

    def diff(connection):  # type: ignore[no-untyped-def]
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)

    async with database.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_add_and_authenticate(database: Database, demo_inventory: Inventory) -> None:
    async with database.session() as session:
        user = await add_account(
            session, NewAccount("20230101", Role.STUDENT, "correct horse", ("D1-101",)), demo_inventory
        )
        await session.commit()
        assert user.room_ids == ["D1-101"]
    async with database.session() as session:
        assert (await authenticate(session, "20230101", "correct horse")) is not None
        assert (await authenticate(session, "20230101", "wrong horse!")) is None
        assert (await authenticate(session, "nobody", "correct horse")) is None
        user = await get_user(session, "20230101")
        assert user is not None
        await set_password(session, user, "battery staple")
        await session.commit()
        assert user.token_version == 1
        user.active = False
        await session.commit()
        assert (await authenticate(session, "20230101", "battery staple")) is None


@pytest.mark.parametrize(
    ("account", "problem"),
    [
        (NewAccount("s1", Role.STUDENT, "long enough"), "a student needs at least one room"),
        (NewAccount("s1", Role.STUDENT, "long enough", ("X-999",)), "unknown room 'X-999'"),
        (NewAccount("s1", Role.STUDENT, "short", ("D1-101",)), "at least 8 characters"),
        (NewAccount("w1", Role.WORKER, "long enough", team="carpentry"), "unknown team 'carpentry'"),
        (NewAccount("a1", Role.STAFF, "long enough", ("D1-101",)), "only students are linked to rooms"),
        (NewAccount("bad name", Role.STAFF, "long enough"), "username 'bad name'"),
    ],
)
async def test_bad_accounts_are_refused(
    database: Database, demo_inventory: Inventory, account: NewAccount, problem: str
) -> None:
    async with database.session() as session:
        with pytest.raises(AccountError, match=problem):
            await add_account(session, account, demo_inventory)


async def test_usernames_are_unique_even_past_the_check(database: Database) -> None:
    async with database.session() as session:
        for _ in range(2):
            session.add(User(username="dup", role="staff", password_hash="x", active=True, token_version=0))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_csv_import_is_all_or_nothing(database: Database, demo_inventory: Inventory) -> None:
    bad = "username,role,password,rooms\ns1,student,,D1-101\ns2,student,,Z9-999\ns1,staff,longenough1,\nw1,plumber,,\n"
    async with database.session() as session:
        with pytest.raises(AccountError) as caught:
            await import_accounts(session, bad, "people.csv", demo_inventory)
        message = str(caught.value)
        assert "people.csv:3: rooms: unknown room 'Z9-999'" in message
        assert "people.csv:4: username 's1' is also on line 2" in message
        assert "people.csv:5: role 'plumber'" in message
        await session.rollback()
        assert await get_user(session, "s1") is None

    good = "username,role,password,rooms,team\ns1,student,,D1-101;D1-102,\nw1,worker,longenough1,,plumbing\n"
    async with database.session() as session:
        result = await import_accounts(session, good, "people.csv", demo_inventory)
        await session.commit()
    assert result.created == ["s1", "w1"] and set(result.generated_passwords) == {"s1"}
    async with database.session() as session:
        student = await authenticate(session, "s1", result.generated_passwords["s1"])
        assert student is not None and student.room_ids == ["D1-101", "D1-102"]
        with pytest.raises(AccountError, match=r"people\.csv:2: username 's1' is taken"):
            await import_accounts(session, good, "people.csv", demo_inventory)


async def test_postgresql_keeps_the_pools_connections_between_bursts(postgres: Postgres) -> None:
    """A burst as large as the pool is served by the same server processes the next time: none is
    closed and forked anew per request (what made top-up notifications slow under load)."""
    database = Database(await create_pg_database(postgres), pool_size=8)

    async def backend() -> int:
        async with database.session() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await asyncio.sleep(0.05)  # held, so that the eight are open at once
            return int(pid)

    try:
        first = set(await asyncio.gather(*(backend() for _ in range(8))))
        second = set(await asyncio.gather(*(backend() for _ in range(8))))
    finally:
        await database.close()
    assert len(first) == 8
    assert second == first


async def test_states_are_enum_members_a_wrong_one_is_refused_and_an_unknown_one_still_reads(
    database: Database,
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text
    from sqlalchemy.exc import StatementError

    from houqin.store.tables import PaymentOrder, PaymentState

    now = datetime.now(UTC)
    async with database.session() as session:
        session.add(PaymentOrder(room="D1-101", provider="sandbox", amount_fen=100, state=PaymentState.CREATED,
                                 requested_by="alice", idempotency_key="k-1", created_at=now))  # fmt: skip
        await session.commit()
        order = (await session.execute(text("SELECT id FROM payment_orders"))).scalar_one()
    async with database.session() as session:
        loaded = await session.get(PaymentOrder, order)
        assert loaded is not None and loaded.state is PaymentState.CREATED
        loaded.state = "refunded-by-hand"  # type: ignore[assignment]
        with pytest.raises(StatementError, match="not a valid PaymentState"):
            await session.commit()
    async with database.session() as session:  # a newer houqin (or a person) wrote a state this one lacks
        await session.execute(text("UPDATE payment_orders SET state = 'refunded'"))
        await session.commit()
    async with database.session() as session:
        later = await session.get(PaymentOrder, order)
        assert later is not None and later.state == "refunded"
