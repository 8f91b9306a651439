"""``houqin db``: the SQL store's schema migrations, and Grafana's reader role."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from assembly.cli.common import fail, on_database
from houqin.settings import Settings
from houqin.store import Database, current_revision, head_revision, upgrade_database

app = typer.Typer(help="The SQL store: schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Apply schema migrations to the configured database."""
    settings = Settings()

    async def upgrade(database: Database) -> tuple[str | None, str | None]:
        before = await current_revision(database)
        await upgrade_database(database, revision)
        return before, await current_revision(database)

    try:
        before, after = asyncio.run(on_database(settings, upgrade))
    except OSError as error:
        raise fail(f"cannot reach the database: {error}") from None
    typer.echo(f"database schema: {before or 'empty'} -> {after}")


@app.command("current")
def db_current() -> None:
    """Print the database's schema revision and the one this houqin needs."""
    settings = Settings()

    revision = asyncio.run(on_database(settings, current_revision))
    typer.echo(f"database: {revision or 'empty'}; houqin needs: {head_revision()}")


@app.command("grant-reader")
def db_grant_reader(role: Annotated[str, typer.Argument(help="An existing PostgreSQL role, e.g. grafana")]) -> None:
    """Let a PostgreSQL role read houqin's tables (not account secrets): the login Grafana's SQL panels use.
    Run it again after `houqin db upgrade` so new tables are readable."""
    from houqin.store.reader import grant_reader

    async def grant(database: Database) -> list[str]:
        return await grant_reader(database, role)

    try:
        tables = asyncio.run(on_database(Settings(), grant))
    except ValueError as error:
        raise fail(str(error)) from None
    typer.echo(f"{role} may read {len(tables)} tables and who each user is (not their password hashes)")
