"""Opening balances brought from the previous prepaid system: a school switching to houqin exports every
room's balance (CSV from its spreadsheet, UTF-8 or GB18030, or XLSX) and imports it here, all rows or
none.

Each balance is posted as an audited adjustment (key ``opening:{room}``, its cause naming the file and the
operator), through the power policy, so a room in arrears is cut and a room in credit keeps or gets its
power. Running the same file again posts nothing new; a different balance for a room already imported
is refused. A room that already has ledger entries (houqin has been charging it) is refused unless the
operator forces it with a reason, which goes into every forced entry's note.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.billing.allowances import ROOM_POOL, allowance_pool
from houqin.billing.policy import PowerPolicy
from houqin.inventory import Inventory
from houqin.store.tables import EntryKind, LedgerEntry, OpeningAllowance

ROOM_COLUMNS = ("room", "房间", "房间号", "宿舍")
YUAN_COLUMNS = ("balance_yuan", "余额", "余额(元)", "余额（元）")
FEN_COLUMNS = ("balance_fen",)
# Optional: the free allowance the room has used this month in the previous system (kWh).
FREE_COLUMNS = ("free_used_kwh", "已用免费电量", "本月已用免费电量", "已用免费电量(度)", "已用免费电量（度）")
LIMIT_KWH = 100_000.0
LIMIT_FEN = 10_000_000  # 100,000 yuan: beyond any dorm room's balance


class OpeningError(ValueError):
    """What is wrong with the file, every problem as ``file:line: why``; nothing was posted."""


@dataclass(frozen=True)
class OpeningBalance:
    room: str
    fen: int
    line: int
    free_used_kwh: float | None = None  # of this month's free allowance, where the file says


@dataclass(frozen=True)
class OpeningResult:
    posted: list[str]
    already: list[str]  # imported before with the same balance: nothing posted


def read_balances(path: Path, inventory: Inventory) -> list[OpeningBalance]:
    """The rows of a CSV or XLSX file of room balances, checked against the inventory."""
    source = path.name
    try:
        rows = _xlsx_rows(path) if path.suffix.lower() in {".xlsx", ".xlsm"} else _csv_rows(path.read_bytes())
    except OSError as error:
        raise OpeningError(f"{source}: {error.strerror}") from None
    except ValueError as error:
        raise OpeningError(f"{source}: {error}") from None
    if not rows:
        raise OpeningError(f"{source}:1: the file is empty")
    header = [str(cell or "").strip().lower() for cell in rows[0][1]]
    room_at = _column(header, ROOM_COLUMNS)
    yuan_at, fen_at = _column(header, YUAN_COLUMNS), _column(header, FEN_COLUMNS)
    free_at = _column(header, FREE_COLUMNS)
    if room_at is None or (yuan_at is None) == (fen_at is None):
        raise OpeningError(f"{source}:{rows[0][0]}: the header needs a room column ({', '.join(ROOM_COLUMNS)}) and "
                           f"one balance column ({', '.join(YUAN_COLUMNS + FEN_COLUMNS)})")  # fmt: skip
    problems: list[str] = []
    balances: list[OpeningBalance] = []
    seen: dict[str, int] = {}
    for line, cells in rows[1:]:
        if not any(str(cell or "").strip() for cell in cells):
            continue  # a blank line (spreadsheets leave them)
        room = str(_cell(cells, room_at) or "").strip()
        amount = _cell(cells, yuan_at if yuan_at is not None else fen_at)
        where = f"{source}:{line}"
        if room not in inventory.rooms:
            problems.append(f"{where}: room {room!r} is not in the inventory")
            continue
        if room in seen:
            problems.append(f"{where}: room {room} is also on line {seen[room]}")
            continue
        seen[room] = line
        try:
            fen = _fen(amount, yuan=yuan_at is not None)
            free = _kwh(_cell(cells, free_at)) if free_at is not None else None
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        balances.append(OpeningBalance(room, fen, line, free))
    if problems:
        raise OpeningError("\n".join(problems))
    return balances


async def post_opening_balances(
    session: AsyncSession,
    policy: PowerPolicy,
    balances: list[OpeningBalance],
    now: datetime,
    *,
    source: str,
    operator: str,
    force_reason: str | None = None,
    month: str | None = None,
) -> OpeningResult:
    """Post every balance in the caller's transaction, or raise ``OpeningError`` having posted none. The
    free allowance used, where the file gives it, counts for ``month`` (local ``YYYY-MM``, this month)."""
    rooms = [balance.room for balance in balances]
    keys = {f"opening:{room}": room for room in rooms}
    earlier = {row.key: row for row in (await session.execute(
        select(LedgerEntry).where(LedgerEntry.key.in_(list(keys))))).scalars()}  # fmt: skip
    charged = dict((await session.execute(
        select(LedgerEntry.room, func.count()).where(LedgerEntry.room.in_(rooms), LedgerEntry.key.not_in(list(keys)))
        .group_by(LedgerEntry.room))).all())  # fmt: skip
    allowances = {row.room: row for row in (await session.execute(
        select(OpeningAllowance).where(OpeningAllowance.room.in_(rooms)))).scalars()}  # fmt: skip
    problems: list[str] = []
    for balance in balances:
        had = allowances.get(balance.room)
        if (
            balance.free_used_kwh is not None
            and had is not None
            and (had.free_used_kwh != balance.free_used_kwh or had.month != month)
        ):
            was, now_said = had.free_used_kwh, balance.free_used_kwh
            problems.append(f"{source}:{balance.line}: room {balance.room} was imported with {was} kWh of "
                            f"{had.month}'s free allowance used; this file says {now_said}")  # fmt: skip
        done = earlier.get(f"opening:{balance.room}")
        if done is not None and done.amount_fen != balance.fen:
            problems.append(f"{source}:{balance.line}: room {balance.room} was imported with {done.amount_fen} fen "
                            f"on {done.created_at:%Y-%m-%d}; this file says {balance.fen}")  # fmt: skip
        elif done is None and charged.get(balance.room) and force_reason is None:
            problems.append(f"{source}:{balance.line}: room {balance.room} already has {charged[balance.room]} ledger "
                            "entries in houqin; force with a reason to add the opening balance anyway")  # fmt: skip
    if problems:
        raise OpeningError("\n".join(problems))
    if month is None and any(balance.free_used_kwh is not None for balance in balances):
        raise OpeningError(f"{source}: the free allowance used needs the month it counts for")
    posted, already = [], []
    for balance in balances:
        if balance.free_used_kwh is not None and month is not None and balance.room not in allowances:
            await _start_allowance(session, balance.room, month, balance.free_used_kwh, source)
        if f"opening:{balance.room}" in earlier:
            already.append(balance.room)
            continue
        note = f"opening balance from the previous system ({source})"
        if charged.get(balance.room):
            note += f"; forced: {force_reason}"
        await policy.post(session, balance.room, EntryKind.ADJUSTMENT, balance.fen, now,
                          key=f"opening:{balance.room}", cause=f"import:{operator}", note=note)  # fmt: skip
        posted.append(balance.room)
    return OpeningResult(posted, already)


async def _start_allowance(session: AsyncSession, room: str, month: str, kwh: float, source: str) -> None:
    """The month's free allowance of the room's own tariff starts at ``kwh`` used (what houqin counted this
    month, if billing has begun, adds to it)."""
    session.add(OpeningAllowance(room=room, month=month, free_used_kwh=kwh, source=source))
    pool = await allowance_pool(session, room, ROOM_POOL, month)
    pool.advance(month)
    pool.add(month, kwh)


def _kwh(value: object) -> float | None:
    text = str(value if value is not None else "").strip().replace(",", "")
    if not text:
        return None  # not known for this room
    try:
        kwh = float(Decimal(text))
    except InvalidOperation:
        raise ValueError(f"free allowance used {text!r} is not a number of kWh") from None
    if not 0 <= kwh <= LIMIT_KWH:
        raise ValueError(f"free allowance used {text!r} is not between 0 and {LIMIT_KWH:g} kWh")
    return kwh


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((index for index, name in enumerate(header) if name in names), None)


def _cell(cells: list[object], index: int | None) -> object:
    return cells[index] if index is not None and index < len(cells) else None


def _fen(value: object, *, yuan: bool) -> int:
    text = str(value if value is not None else "").strip().replace(",", "").replace("¥", "").replace("￥", "")
    if not text:
        raise ValueError("the balance is empty")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"balance {text!r} is not a number") from None
    fen = number * 100 if yuan else number
    if fen != fen.to_integral_value():
        raise ValueError(f"balance {text!r} has fractions of a fen")
    if abs(fen) > LIMIT_FEN:
        raise ValueError(f"balance {text!r} is beyond ±{LIMIT_FEN // 100} yuan")
    return int(fen)


def _csv_rows(data: bytes) -> list[tuple[int, list[object]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")  # what Chinese spreadsheet software saves "CSV" as
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[object]]] = []
    for cells in reader:
        rows.append((reader.line_num, list(cells)))
    return rows


def _xlsx_rows(path: Path) -> list[tuple[int, list[object]]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, KeyError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"not a readable XLSX workbook ({error})") from None
    try:
        sheet = book.worksheets[0]
        return [(number, list(cells)) for number, cells in enumerate(sheet.iter_rows(values_only=True), 1)]
    finally:
        book.close()
