"""People who sign in to houqin: students (linked to rooms), workers (in a team), staff and admins."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.inventory import Inventory
from houqin.store.tables import Role, User, UserRoom

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
MIN_PASSWORD = 8
_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about an account that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class NewAccount:
    username: str
    role: Role
    password: str
    rooms: tuple[str, ...] = ()
    team: str | None = None
    display_name: str = ""


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check_account(account: NewAccount, inventory: Inventory) -> list[str]:
    """Everything wrong with a new account, as sentences (empty when it can be created)."""
    problems: list[str] = []
    if not USERNAME.match(account.username):
        problems.append(f"username {account.username!r}: use 1-64 letters, digits, '.', '_', '-' or '@'")
    if len(account.password) < MIN_PASSWORD:
        problems.append(f"password: at least {MIN_PASSWORD} characters")
    if account.rooms and account.role is not Role.STUDENT:
        problems.append(f"rooms: only students are linked to rooms, not a {account.role}")
    if account.role is Role.STUDENT and not account.rooms:
        problems.append("rooms: a student needs at least one room")
    for room in account.rooms:
        if room not in inventory.rooms:
            problems.append(f"rooms: unknown room {room!r}")
    if account.team is not None:
        if account.role is not Role.WORKER:
            problems.append(f"team: only workers belong to a maintenance team, not a {account.role}")
        elif account.team not in inventory.teams:
            problems.append(f"team: unknown team {account.team!r}")
    return problems


async def hash_password(password: str) -> str:
    # Argon2 is deliberately slow (tens of ms); keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


async def get_user(session: AsyncSession, username: str) -> User | None:
    result = await session.execute(select(User).where(User.username == username))
    return result.scalar_one_or_none()


async def add_account(session: AsyncSession, account: NewAccount, inventory: Inventory) -> User:
    """Create an account (caller commits). Raises ``AccountError`` for bad input or a taken name."""
    problems = check_account(account, inventory)
    if problems:
        raise AccountError("; ".join(problems))
    if await get_user(session, account.username) is not None:
        raise AccountError(f"username {account.username!r} is taken")
    user = User(
        username=account.username,
        display_name=account.display_name,
        role=account.role.value,
        team=account.team,
        password_hash=await hash_password(account.password),
        active=True,
        token_version=0,
        rooms=[UserRoom(room_id=room) for room in account.rooms],
    )
    session.add(user)
    await session.flush()
    return user


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (same cost either way)."""
    user = await get_user(session, username)
    if user is None:
        await verify_password(_DUMMY_HASH, password)
        return None
    if not await verify_password(user.password_hash, password) or not user.active:
        return None
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    user.password_hash = await hash_password(password)
    user.token_version += 1


CSV_COLUMNS = ("username", "role", "password", "rooms", "team", "display_name")


@dataclass(frozen=True)
class ImportResult:
    created: list[str]
    generated_passwords: dict[str, str]


async def import_accounts(session: AsyncSession, text: str, source: str, inventory: Inventory) -> ImportResult:
    """Create accounts from CSV (header: username, role[, password, rooms, team, display_name]).

    ``rooms`` holds room ids separated by ``;``. An empty password is generated and returned.
    All rows are checked first; on any problem nothing is created and every problem is reported
    as ``file:line: message``.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [column for column in ("username", "role") if column not in header]
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if missing or unknown:
        parts = [f"missing column(s) {', '.join(missing)}"] if missing else []
        parts += [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        raise AccountError(f"{source}:1: {'; '.join(parts)} (columns: {', '.join(CSV_COLUMNS)})")

    accounts: list[NewAccount] = []
    generated: dict[str, str] = {}
    problems: list[str] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        username = (row.get("username") or "").strip()
        role_text = (row.get("role") or "").strip().lower()
        try:
            role = Role(role_text)
        except ValueError:
            problems.append(f"{source}:{line}: role {role_text!r}: must be one of {', '.join(Role)}")
            continue
        password = (row.get("password") or "").strip()
        if not password:
            password = generated[username] = generate_password()
        rooms = tuple(room.strip() for room in (row.get("rooms") or "").split(";") if room.strip())
        account = NewAccount(
            username=username,
            role=role,
            password=password,
            rooms=rooms,
            team=(row.get("team") or "").strip() or None,
            display_name=(row.get("display_name") or "").strip(),
        )
        problems.extend(f"{source}:{line}: {problem}" for problem in check_account(account, inventory))
        if username in seen:
            problems.append(f"{source}:{line}: username {username!r} is also on line {seen[username]}")
        seen.setdefault(username, line)
        accounts.append(account)

    if accounts:
        taken = await session.execute(select(User.username).where(User.username.in_([a.username for a in accounts])))
        for name in taken.scalars():
            problems.append(f"{source}:{seen[name]}: username {name!r} is taken")
    if problems:
        raise AccountError("\n".join(problems))
    for account in accounts:
        await add_account(session, account, inventory)
    return ImportResult([account.username for account in accounts], generated)
