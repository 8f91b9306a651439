"""``houqin users``: accounts of students, workers, staff, cashiers and admins."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assembly.cli.common import fail, in_session, inventory_or_exit
from houqin.accounts import AccountError, ImportResult, NewAccount, add_account, generate_password, import_accounts
from houqin.settings import Settings
from houqin.store.tables import Role, User

app = typer.Typer(help="Accounts of students, workers, staff and admins.", no_args_is_help=True)


@app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Sign-in name, e.g. a student number")],
    role: Annotated[Role, typer.Option(help="student, worker, staff, cashier or admin")],
    room: Annotated[list[str] | None, typer.Option(help="A student's room (repeat for several)")] = None,
    team: Annotated[str | None, typer.Option(help="A worker's maintenance team")] = None,
    name: Annotated[str, typer.Option(help="Display name")] = "",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
    generate: Annotated[bool, typer.Option(help="Generate a password and print it")] = False,
) -> None:
    """Create an account. The password is asked for unless --password-stdin or --generate."""
    settings = Settings()
    inventory = inventory_or_exit(settings.inventory)
    if generate:
        password = generate_password()
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    account = NewAccount(username, role, password, tuple(room or ()), team, name)

    async def work(session: AsyncSession) -> User:
        return await add_account(session, account, inventory)

    try:
        asyncio.run(in_session(settings, work))
    except AccountError as error:
        raise fail(f"cannot add {username!r}: {error}") from None
    typer.echo(f"added {role.value} {username}" + (f" with password {password}" if generate else ""))


@app.command("import")
def users_import(
    csv_path: Annotated[
        Path, typer.Argument(help="CSV with columns username, role[, password, rooms, team, display_name]")
    ],
) -> None:
    """Create many accounts from a CSV, all or none; prints generated passwords as CSV."""
    settings = Settings()
    inventory = inventory_or_exit(settings.inventory)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise fail(f"{csv_path}: {error.strerror}") from None

    async def work(session: AsyncSession) -> ImportResult:
        return await import_accounts(session, text, str(csv_path), inventory)

    try:
        result = asyncio.run(in_session(settings, work))
    except AccountError as error:
        raise fail(f"{error}\nnothing was imported") from None
    typer.echo(f"imported {len(result.created)} accounts", err=True)
    if result.generated_passwords:
        typer.echo("username,password")
        for username, password in result.generated_passwords.items():
            typer.echo(f"{username},{password}")


@app.command("list")
def users_list() -> None:
    """List accounts with their role, team and rooms."""

    async def work(session: AsyncSession) -> list[User]:
        return list((await session.execute(select(User).order_by(User.username))).scalars())

    for user in asyncio.run(in_session(Settings(), work)):
        extra = user.team or ",".join(user.room_ids)
        typer.echo(f"{user.username:<24} {user.role:<8} {'active' if user.active else 'disabled':<9} {extra}")
