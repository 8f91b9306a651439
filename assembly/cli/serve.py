"""``houqin run`` and ``houqin demo``: the assembled houqin, run until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from assembly.cli.common import fail, inventory_or_exit, rules_or_exit, setup_logging, site_settings_or_exit
from assembly.cli.demo_campus import demo_accounts, demo_balances
from assembly.cli.demo_history import demo_history
from assembly.graph import assemble
from assembly.peers import PeerConflictError
from assembly.roles import ALL_ROLES, ProcessRole, UnknownRoleError, parse_roles
from assembly.sqlite_lock import SqliteInUseError
from assembly.stores import SchemaBehindError
from houqin import __version__, event_loop
from houqin.billing.providers.rsa_keys import KeyFileError
from houqin.config_file import ConfigError
from houqin.inventory import Inventory
from houqin.schedules import DEMO_FILES
from houqin.schedules.book import ScheduleInvalidError, load_schedule_file
from houqin.settings import Settings
from houqin.supervisor import ComponentFailedError, install_stop_signals
from rules.model import Rule

log = logging.getLogger("houqin")


async def _serve(
    settings: Settings, inventory: Inventory, rules: list[Rule], banner: list[str], simulate: bool,
    roles: frozenset[ProcessRole] = ALL_ROLES,
) -> None:  # fmt: skip
    async with assemble(settings, inventory, roles=roles, rules=rules, simulate=simulate) as houqin:
        stop = asyncio.Event()
        install_stop_signals(stop)
        if houqin.api is not None:
            url = houqin.api.url
            log.info("houqin %s serving %s on %s (%d devices, %d rooms)", __version__, inventory.site.name, url,
                     len(inventory.devices), len(inventory.rooms))  # fmt: skip
            typer.echo(f"houqin is up: {url}  (web pages: {url}/app/  API docs: {url}/docs)", err=True)
        for line in banner:
            typer.echo(line, err=True)
        event_loop.settle()
        await houqin.run(stop)
        log.info("houqin stopped")


def _run_or_exit(
    settings: Settings, inventory: Inventory, rules: list[Rule], banner: list[str], simulate: bool,
    roles: frozenset[ProcessRole] = ALL_ROLES,
) -> None:  # fmt: skip
    try:
        event_loop.run(_serve(settings, inventory, rules, banner, simulate, roles))
    except ComponentFailedError as failure:
        raise fail(f"houqin stopped because a component failed: {failure}") from None
    except (
        OSError,
        KeyFileError,
        ConfigError,
        ScheduleInvalidError,
        SchemaBehindError,
        SqliteInUseError,
        PeerConflictError,
    ) as error:
        raise fail(str(error)) from None


def run(
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Serve every Modbus device of the inventory from simulators")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Listen address (default: setting api_host)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: setting api_port; 0 picks one)")] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(help="What this process does: api, collect, rules, billing, scheduler (comma-separated or "
                     "repeated; default: all). Several processes need PostgreSQL"),
    ] = None,
) -> None:  # fmt: skip
    """Run houqin: every configured component in one process (or the roles given), until SIGINT or SIGTERM."""
    try:
        roles = parse_roles(role) if role else ALL_ROLES
    except UnknownRoleError as error:
        raise fail(f"--role: {error}") from None
    settings = Settings()
    if host is not None:
        settings.api_host = host
    if port is not None:
        settings.api_port = port
    setup_logging(settings.log_level)
    inventory = inventory_or_exit(settings.inventory)
    settings = site_settings_or_exit(settings, inventory)
    rules = rules_or_exit(settings, inventory)
    _run_or_exit(settings, inventory, rules, [], simulate, roles)


def demo(
    host: Annotated[str | None, typer.Option(help="Listen address (default: setting api_host)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: setting api_port; 0 picks one)")] = None,
    history_days: Annotated[
        int, typer.Option(min=0, max=400, help="Days of simulated history made at the first start (0: none)")
    ] = 60,
) -> None:
    """Run the demo campus from devices.yaml with demo accounts, on embedded SQLite, and print the logins."""
    base = Settings()
    # The demo never touches a configured production database, broker or InfluxDB.
    settings = Settings(
        data_dir=base.data_dir / "demo",
        inventory=base.inventory,
        api_host=base.api_host if host is None else host,
        api_port=base.api_port if port is None else port,
        timezone=base.timezone,
        log_level=base.log_level,
    )
    settings.database_url = None
    settings.mqtt_url = "embedded"
    settings.influx.url = "embedded"
    settings.payments.sandbox = True  # the demo tops up without real money
    if settings.dlt645.password is None:  # the simulated DL/T 645 meters obey the demo's own password
        settings.dlt645.password = SecretStr(f"{secrets.randbelow(10**6):06d}")
    settings.schedules.calendar_file = base.schedules.calendar_file or DEMO_FILES / "calendar.yaml"
    setup_logging(settings.log_level)
    inventory = inventory_or_exit(settings.inventory)
    settings.schedules.seed_file = base.schedules.seed_file or _demo_schedules(inventory)
    settings = site_settings_or_exit(settings, inventory)
    rules = rules_or_exit(base, inventory)
    logins = asyncio.run(demo_accounts(settings, inventory))
    seconds = asyncio.run(demo_history(settings, inventory, history_days))
    if seconds:
        typer.echo(f"demo: {history_days} days of history made in {seconds:.1f} s", err=True)
    asyncio.run(demo_balances(settings, inventory))
    banner = ["demo logins (kept in " + str(settings.data_dir / "demo-logins.json") + "):"]
    banner += [f"  {name:<9} {password}" for name, password in logins.items()]
    _run_or_exit(settings, inventory, rules, banner, simulate=True)


def _demo_schedules(inventory: Inventory) -> Path | None:
    """The demo campus's schedules, where the inventory has their zones (a site trying the demo on its own
    devices.yaml gets none rather than a refusal)."""
    demo = DEMO_FILES / "schedules.yaml"
    missing = sorted({spec.zone for spec in load_schedule_file(demo)} - set(inventory.zones))
    if missing:
        log.info("demo schedules not seeded: this inventory has no zone %s", ", ".join(missing))
        return None
    return demo
