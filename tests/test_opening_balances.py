"""Moving in from the old prepaid system: every room's balance from a CSV (UTF-8 with a BOM, or GB18030
as Chinese spreadsheet software saves it) or an XLSX, all rows or none, each problem as file:line;
posted as audited opening entries through the power policy (a room in arrears is cut); the same file
again posts nothing; a room houqin already charged needs a forced reason. On SQLite and PostgreSQL, and
the command as a real process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from houqin.billing.ledger import balance_from_entries, ensure_wallets, post
from houqin.billing.metering import RoomBilling
from houqin.billing.opening import OpeningError, post_opening_balances, read_balances
from houqin.inventory import Inventory, load_inventory
from houqin.readings import Reading
from houqin.store import Database
from houqin.store.tables import EntryKind, LedgerEntry, Wallet
from tests.conftest import DEMO_INVENTORY
from tests.test_cli import houqin
from tests.test_room_policy import Room, policy_for

TZ = ZoneInfo("Asia/Shanghai")


def test_files_are_read_all_or_nothing_with_their_lines(tmp_path: Path, demo_inventory: Inventory) -> None:
    chinese = tmp_path / "旧系统余额.csv"
    chinese.write_bytes('房间,余额,备注\nD1-101,12.50,\nD1-102,-3.2,欠费\n\nD1-103,"1,024.00",\n'.encode("gb18030"))
    read = read_balances(chinese, demo_inventory)
    assert [(b.room, b.fen, b.line) for b in read] == [("D1-101", 1250, 2), ("D1-102", -320, 3), ("D1-103", 102400, 5)]
    bom = tmp_path / "balances.csv"
    bom.write_text("room,balance_fen\nD1-104,700\n", encoding="utf-8-sig")
    assert [(b.room, b.fen) for b in read_balances(bom, demo_inventory)] == [("D1-104", 700)]
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (("房间号", "余额（元）"), ("D2-101", 33.3), ("D2-102", 0)):
        sheet.append(row)
    book.save(tmp_path / "balances.xlsx")
    assert [(b.room, b.fen, b.line) for b in read_balances(tmp_path / "balances.xlsx", demo_inventory)] == [
        ("D2-101", 3330, 2), ("D2-102", 0, 3)]  # fmt: skip

    bad = tmp_path / "bad.csv"
    bad.write_text("room,balance_yuan\nD9-999,1\nD1-101,abc\nD1-102,1.005\nD1-101,2\nD1-103,\nD1-104,999999\n",
                   encoding="utf-8")  # fmt: skip
    with pytest.raises(OpeningError) as caught:
        read_balances(bad, demo_inventory)
    assert str(caught.value).splitlines() == [
        "bad.csv:2: room 'D9-999' is not in the inventory",
        "bad.csv:3: balance 'abc' is not a number",
        "bad.csv:4: balance '1.005' has fractions of a fen",
        "bad.csv:5: room D1-101 is also on line 3",
        "bad.csv:6: the balance is empty",
        "bad.csv:7: balance '999999' is beyond ±100000 yuan",
    ]
    headless = tmp_path / "headless.csv"
    headless.write_text("D1-101,12\n", encoding="utf-8")
    with pytest.raises(OpeningError, match=r"headless.csv:1: the header needs a room column"):
        read_balances(headless, demo_inventory)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(OpeningError, match=r"broken.xlsx: not a readable XLSX workbook"):
        read_balances(broken, demo_inventory)


async def test_balances_are_posted_once_and_audited(tmp_path: Path, database: Database,
                                                    demo_inventory: Inventory) -> None:  # fmt: skip
    rooms = ["D1-101", "D1-102", "D1-103"]
    await ensure_wallets(database, rooms)
    policy = policy_for(database, demo_inventory)
    file = tmp_path / "old.csv"
    file.write_text("room,balance_yuan\nD1-101,25.00\nD1-102,-4.00\n", encoding="utf-8")
    balances = read_balances(file, demo_inventory)
    now = datetime.now(UTC)
    async with database.session() as session:
        result = await post_opening_balances(session, policy, balances, now, source=file.name, operator="zhou")
        await session.commit()
    assert result.posted == ["D1-101", "D1-102"] and result.already == []
    assert await Room(database, policy, "D1-102").relay() == ["off"]  # in arrears: cut
    async with database.session() as session:
        entry = (await session.execute(select(LedgerEntry).where(LedgerEntry.key == "opening:D1-101"))).scalar_one()
        assert (entry.amount_fen, entry.cause, entry.kind) == (2500, "import:zhou", "adjustment")
        assert "old.csv" in entry.note
        for room in ("D1-101", "D1-102"):
            wallet = await session.get(Wallet, room)
            assert wallet is not None and wallet.balance_fen == await balance_from_entries(session, room)
    # The same file again: nothing new. A different balance for an imported room: refused, nothing posted.
    async with database.session() as session:
        again = await post_opening_balances(session, policy, balances, now, source=file.name, operator="zhou")
        await session.commit()
    assert again.posted == [] and again.already == ["D1-101", "D1-102"]
    changed = tmp_path / "changed.csv"
    changed.write_text("room,balance_yuan\nD1-103,5\nD1-101,26\n", encoding="utf-8")
    async with database.session() as session:
        with pytest.raises(OpeningError, match=r"changed.csv:3: room D1-101 was imported with 2500 fen on .*; this "
                                               r"file says 2600"):  # fmt: skip
            await post_opening_balances(session, policy, read_balances(changed, demo_inventory), now,
                                        source=changed.name, operator="zhou")  # fmt: skip
        await session.rollback()
    async with database.session() as session:
        assert await session.get(Wallet, "D1-103") is not None
        assert await balance_from_entries(session, "D1-103") == 0  # the good row of a refused file: not posted
    # A room houqin has charged already: refused unless forced with a reason (kept in the entry).
    async with database.session() as session:
        await post(session, "D1-103", "charge", -120, now, key="charge:1", cause="meter")
        await session.commit()
    late = tmp_path / "late.csv"
    late.write_text("room,balance_yuan\nD1-103,8\n", encoding="utf-8")
    async with database.session() as session:
        with pytest.raises(OpeningError, match=r"late.csv:2: room D1-103 already has 1 ledger entries"):
            await post_opening_balances(session, policy, read_balances(late, demo_inventory), now, source="late.csv",
                                        operator="zhou")  # fmt: skip
        await session.rollback()
    async with database.session() as session:
        forced = await post_opening_balances(session, policy, read_balances(late, demo_inventory), now,
                                             source="late.csv", operator="zhou",
                                             force_reason="old system's September export came late")  # fmt: skip
        await session.commit()
        entry = (await session.execute(select(LedgerEntry).where(LedgerEntry.key == "opening:D1-103"))).scalar_one()
    assert forced.posted == ["D1-103"] and "forced: old system's September export came late" in entry.note


def test_the_command_imports_as_a_process(tmp_path: Path) -> None:
    env = {"HOUQIN_INVENTORY": str(DEMO_INVENTORY), "HOUQIN_DATA_DIR": str(tmp_path)}
    file = tmp_path / "balances.csv"
    file.write_text("房间,余额\nD1-101,50\nD1-102,20.5\n", encoding="utf-8-sig")
    first = houqin("billing", "import-balances", str(file), "--operator", "zhou", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "imported 2 opening balances (70.50 yuan in all); 0 were imported before with the " \
                                   "same balance"  # fmt: skip
    second = houqin("billing", "import-balances", str(file), cwd=tmp_path, env=env)
    assert second.stdout.strip().startswith("imported 0 opening balances") and "2 were imported before" in second.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("房间,余额\nD1-103,7\nD9-999,1\n", encoding="utf-8")
    refused = houqin("billing", "import-balances", str(bad), cwd=tmp_path, env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == ["bad.csv:3: room 'D9-999' is not in the inventory",
                                                   "nothing was imported"]  # fmt: skip


async def test_the_free_allowance_used_moves_in_too(tmp_path: Path, database: Database) -> None:
    """A room that used 18 of its 20 free kWh this month in the old system has 2 left in houqin; a room the
    file says nothing about has all 20; the same figure again is fine, another is refused."""
    text = DEMO_INVENTORY.read_text(encoding="utf-8").replace(
        "    price_fen_per_kwh: 56\n", "    price_fen_per_kwh: 56\n    free_kwh_per_month: 20\n", 1
    )
    (tmp_path / "devices.yaml").write_text(text, encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    await ensure_wallets(database, ["D1-101", "D1-102"])
    policy = policy_for(database, inventory)
    file = tmp_path / "old.csv"
    file.write_text("房间,余额,已用免费电量\nD1-101,50,18\nD1-102,50,\n", encoding="utf-8")
    balances = read_balances(file, inventory)
    assert [balance.free_used_kwh for balance in balances] == [18.0, None]
    now = datetime.now(UTC)
    month = now.astimezone(TZ).strftime("%Y-%m")
    async with database.session() as session:
        await post_opening_balances(session, policy, balances, now, source=file.name, operator="zhou", month=month)
        await session.commit()
    billing = RoomBilling(database, inventory, TZ)
    for hours_ago, kwh in ((2, 100.0), (1, 105.0)):  # 5 kWh in each room
        await billing.consume([Reading(inventory.rooms[room].meter, now - timedelta(hours=hours_ago), {"energy": kwh},
                                       {"kind": "electricity"}) for room in ("D1-101", "D1-102")])  # fmt: skip
    async with database.session() as session:
        charged = dict((await session.execute(
            select(LedgerEntry.room, func.sum(LedgerEntry.amount_fen)).where(LedgerEntry.kind == EntryKind.CHARGE)
            .group_by(LedgerEntry.room))).all())  # fmt: skip
    assert charged.get("D1-101") == -3 * 56 and charged.get("D1-102", 0) == 0
    async with database.session() as session:
        again = await post_opening_balances(session, policy, balances, now, source=file.name, operator="zhou",
                                            month=month)  # fmt: skip
        assert again.posted == []
        other = tmp_path / "other.csv"
        other.write_text("room,balance_yuan,free_used_kwh\nD1-101,50,17\n", encoding="utf-8")
        with pytest.raises(OpeningError, match=r"other.csv:2: room D1-101 was imported with 18.0 kWh of .*17.0"):
            await post_opening_balances(session, policy, read_balances(other, inventory), now, source=other.name,
                                        operator="zhou", month=month)  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("room,balance_yuan,free_used_kwh\nD1-101,50,lots\nD1-102,50,-1\n", encoding="utf-8")
    with pytest.raises(OpeningError) as refused:
        read_balances(bad, inventory)
    assert str(refused.value).splitlines() == [
        "bad.csv:2: free allowance used 'lots' is not a number of kWh",
        "bad.csv:3: free allowance used '-1' is not between 0 and 100000 kWh",
    ]
