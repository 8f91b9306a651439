"""The ``houqin`` command, and the composition root that wires every part into one process."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from collectors.simulators.campus import SimulatedCampus
from houqin import __version__, event_loop
from houqin.accounts import (
    AccountError,
    ImportResult,
    NewAccount,
    Role,
    add_account,
    generate_password,
    import_accounts,
)
from houqin.billing.ledger import ensure_wallets, post
from houqin.billing.metering import RoomBilling
from houqin.billing.overload import OverloadGuard
from houqin.billing.policy import PowerPolicy
from houqin.billing.providers.rsa_keys import KeyFileError
from houqin.commands import CommandQueue
from houqin.config_file import ConfigError
from houqin.inventory import Inventory, load_inventory
from houqin.readiness import Readiness, influx_check, mqtt_broker_check
from houqin.readings import ReadingSink
from houqin.repairs.clock import RepairClock
from houqin.repairs.command_faults import CommandFaults
from houqin.repairs.faults import FaultBook
from houqin.repairs.notifier import Notifier
from houqin.repairs.orders import RepairDesk
from houqin.schedules.book import ScheduleBook, ScheduleInvalidError, load_schedule_file
from houqin.schedules.calendar import load_calendar_file
from houqin.schedules.commander import ZoneCommander
from houqin.schedules.scheduler import Scheduler
from houqin.settings import Settings, masked_settings
from houqin.simulation import FAULTS
from houqin.store import Database, current_revision, head_revision, upgrade_database
from houqin.store.tables import User
from houqin.supervisor import Component, ComponentFailedError, Service, install_stop_signals, supervise
from houqin.telemetry import TelemetryStore
from houqin.telemetry.embedded_store import EmbeddedStore
from houqin.telemetry.influx_store import InfluxStore
from houqin.telemetry.self_report import SelfReport
from houqin.telemetry.spool import Spool
from rules.engine import RulesEngine
from rules.loader import DEFAULT_RULES, applies, load_rules
from rules.model import Rule

log = logging.getLogger("houqin")
T = TypeVar("T")

app = typer.Typer(
    name="houqin",
    help="houqin (后勤): campus logistics — meters, repair orders, prepaid dorm electricity, lighting, broadcast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The SQL store: schema migrations.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts of students, workers, staff and admins.", no_args_is_help=True)
schedules_app = typer.Typer(help="Lighting and broadcast schedules and the school calendar.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(schedules_app, name="schedules")
grafana_app = typer.Typer(
    help="Grafana dashboards: generate the JSON, publish to a running Grafana.", no_args_is_help=True
)
mqtt_app = typer.Typer(help="The MQTT broker's access rules for the inventory's devices.", no_args_is_help=True)
app.add_typer(grafana_app, name="grafana")
app.add_typer(mqtt_app, name="mqtt")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pymodbus logs every failed connect and retry itself; houqin's links report them once, with context.
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    for chatty in ("amqtt", "transitions"):  # the embedded broker logs every connection and state change
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _load_inventory_or_exit(path: Path) -> Inventory:
    try:
        return load_inventory(path)
    except ConfigError as error:
        count = len(error.issues)
        raise _fail(f"{error}\n{path}: {count} error{'s' if count != 1 else ''}") from None


def _database(settings: Settings) -> Database:
    """The configured store, not yet opened or upgraded."""
    return Database(settings.effective_database_url, pool_size=settings.database_pool_size)


async def _open_database(settings: Settings) -> Database:
    """Open the store; SQLite is upgraded in place, PostgreSQL must have been upgraded by the operator."""
    database = _database(settings)
    if database.is_sqlite:
        await upgrade_database(database)
        return database
    current, head = await current_revision(database), head_revision()
    if current != head:
        await database.close()
        raise _fail(f"database schema is at {current or 'nothing'}, houqin needs {head}: run `houqin db upgrade`")
    return database


def _readiness(settings: Settings, database: Database) -> Readiness:
    readiness = Readiness()
    readiness.add("database", database.ping)
    if not settings.mqtt_embedded:
        readiness.add("mqtt_broker", mqtt_broker_check(settings.mqtt_url))
    if not settings.influx.embedded:
        readiness.add("influxdb", influx_check(settings.influx))
    return readiness


def _telemetry_store(settings: Settings) -> TelemetryStore:
    """Where readings go: InfluxDB (with its spool) when configured, the embedded SQLite store otherwise."""
    if settings.influx.embedded:
        return EmbeddedStore(settings.data_dir / "telemetry.sqlite3", settings.telemetry)
    spool = Spool(settings.data_dir / "spool", settings.telemetry.spool_max_bytes)
    return InfluxStore(settings.influx, settings.telemetry, spool)


def _load_rules_or_exit(settings: Settings, inventory: Inventory, extra: Sequence[Path] = ()) -> list[Rule]:
    try:
        return load_rules([DEFAULT_RULES, *settings.rule_files, *extra], inventory)
    except ConfigError as error:
        count = len(error.issues)
        raise _fail(f"{error}\nrule files: {count} error{'s' if count != 1 else ''}") from None


async def _collection(
    settings: Settings,
    inventory: Inventory,
    simulate: bool,
    sinks: Sequence[ReadingSink],
    commands: CommandQueue | None = None,
) -> tuple[list[Service], list[Component]]:
    """The collection components (pipeline, bus pollers, MQTT link, simulated MQTT devices) and the
    started services they need (simulated Modbus gateways, the embedded broker), which the caller stops
    after the components."""
    from collectors.command_dispatcher import ModbusCommandDispatcher
    from collectors.embedded_broker import EmbeddedBroker
    from collectors.modbus_link import ModbusLink
    from collectors.modbus_poller import ModbusBusPoller
    from collectors.mqtt_command_dispatcher import MqttCommandDispatcher
    from collectors.mqtt_link import MqttLink
    from collectors.pipeline import Pipeline

    pipeline = Pipeline()
    for sink in sinks:
        pipeline.add_sink(sink)  # blocks when full: no reading is shed on its way to storage or the rules
    collectors: list[Component] = [pipeline, SelfReport(pipeline.publish, settings.telemetry.self_report_seconds)]
    services: list[Service] = []
    links: dict[str, ModbusLink] = {}  # one per bus, shared by its poller and the command dispatcher
    campus = SimulatedCampus(inventory, settings.tz) if simulate else None
    if campus is not None:
        await campus.start()  # links need the simulators' ports
        services.append(campus)
    for gateway in inventory.gateways.values():
        if campus is not None:
            if gateway.id not in campus.gateways:
                continue
            gateway = campus.gateway_for_link(gateway)
        devices = inventory.devices_on(gateway.id)
        link = links[gateway.id] = ModbusLink(gateway)
        collectors.append(ModbusBusPoller(link, devices, inventory, pipeline.publish))
    if commands is not None and links:
        collectors.append(ModbusCommandDispatcher(commands, links, inventory))
    if inventory.mqtt_devices():
        mqtt_url = settings.mqtt_url
        if settings.mqtt_embedded:
            broker = EmbeddedBroker(settings.embedded_mqtt_port)
            await broker.start()
            services.append(broker)
            mqtt_url = broker.url
        mqtt_link = MqttLink(mqtt_url, inventory, pipeline.publish, client_id=settings.mqtt_client_id)
        collectors.append(mqtt_link)
        if commands is not None:
            mqtt_commands = MqttCommandDispatcher(commands, mqtt_link, inventory)
            pipeline.add_sink(mqtt_commands)  # it confirms commands by the devices' state messages
            collectors.append(mqtt_commands)
        if campus is not None:
            simulated_url = mqtt_url if settings.mqtt_embedded else settings.simulator_mqtt_url or mqtt_url
            collectors.append(campus.mqtt_devices(simulated_url))
    return services, collectors


async def _serve(
    settings: Settings,
    inventory: Inventory,
    rules: list[Rule],
    banner: list[str] | None = None,
    simulate: bool = False,
) -> None:
    from api.app import create_app
    from api.server import ApiServer

    database = await _open_database(settings)
    services: list[Service] = []
    telemetry = _telemetry_store(settings)
    # The store stops after everything that feeds it, so what the pipeline drains at the end is kept.
    telemetry_stop = asyncio.Event()
    telemetry_task = asyncio.create_task(telemetry.run(telemetry_stop), name=telemetry.name)
    desk = RepairDesk(inventory, settings.repairs, settings.tz)
    notifier = Notifier(settings.notify, database)
    command_faults = CommandFaults(FaultBook(database, desk), inventory, notifier.notify)
    commands = CommandQueue(database, inventory, on_failed=command_faults.failed,
                            on_confirmed=command_faults.confirmed)  # fmt: skip
    schedule_book = ScheduleBook(database, inventory, settings.tz)
    await _seed_schedules(settings, schedule_book)
    scheduler = Scheduler(schedule_book, ZoneCommander(database, inventory, commands), inventory, settings.schedules)
    engine = RulesEngine(rules, inventory, FaultBook(database, desk), settings.repairs, settings.tz,
                         on_order_change=notifier.notify, telemetry=telemetry, commands=commands)  # fmt: skip
    await ensure_wallets(database, sorted(inventory.rooms))
    policy = PowerPolicy(inventory, commands, settings.billing, settings.tz, database)
    billing = RoomBilling(database, inventory, settings.tz, settings.billing.max_room_kw, policy,
                          faults=FaultBook(database, desk), on_order_change=notifier.notify)  # fmt: skip
    overload = OverloadGuard(inventory, policy, settings.billing)
    try:
        readiness = _readiness(settings, database)
        sinks: list[ReadingSink] = [telemetry, engine, billing, overload]
        services, collectors = await _collection(settings, inventory, simulate, sinks, commands)
        collectors += [engine, RepairClock(database, desk, notifier.notify), notifier, policy, scheduler]
        simulator = next((service for service in services if isinstance(service, SimulatedCampus)), None)
        api = ApiServer(
            create_app(
                settings,
                inventory=inventory,
                database=database,
                readiness=readiness,
                telemetry=telemetry,
                simulator=simulator,
                on_order_change=notifier.notify,
                commands=commands,
                schedule_book=schedule_book,
            ),
            settings.api_host,
            settings.api_port,
        )
        components: list[Component] = [api, *collectors]
        stop = asyncio.Event()
        install_stop_signals(stop)
        log.info(
            "houqin %s serving %s on %s (%d devices, %d rooms)",
            __version__,
            inventory.site.name,
            api.url,
            len(inventory.devices),
            len(inventory.rooms),
        )
        typer.echo(f"houqin is up: {api.url}  (web pages: {api.url}/app/  API docs: {api.url}/docs)", err=True)
        for line in banner or []:
            typer.echo(line, err=True)
        event_loop.settle()
        await supervise(components, stop)
        log.info("houqin stopped")
    finally:
        telemetry_stop.set()
        await telemetry_task
        for service in reversed(services):
            await service.stop()
        await database.close()


async def _seed_schedules(settings: Settings, book: ScheduleBook) -> None:
    """The calendar and schedule files the settings name, imported at start (by name: edits made through
    the API to other schedules stay)."""
    schedules = settings.schedules
    if schedules.calendar_file is not None:
        await book.import_calendar(load_calendar_file(schedules.calendar_file))
    if schedules.seed_file is not None:
        created, replaced = await book.seed(load_schedule_file(schedules.seed_file), "seed", datetime.now(UTC))
        log.info("schedules from %s: %d created, %d replaced", schedules.seed_file, created, replaced)


@app.command()
def run(
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Serve every Modbus device of the inventory from simulators")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Listen address (default: setting api_host)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: setting api_port; 0 picks one)")] = None,
) -> None:
    """Run houqin: every configured component in one process, until SIGINT or SIGTERM."""
    settings = Settings()
    if host is not None:
        settings.api_host = host
    if port is not None:
        settings.api_port = port
    _setup_logging(settings.log_level)
    inventory = _load_inventory_or_exit(settings.inventory)
    rules = _load_rules_or_exit(settings, inventory)
    try:
        event_loop.run(_serve(settings, inventory, rules, simulate=simulate))
    except ComponentFailedError as failure:
        raise _fail(f"houqin stopped because a component failed: {failure}") from None
    except (OSError, KeyFileError, ConfigError, ScheduleInvalidError) as error:
        raise _fail(str(error)) from None


async def _demo_accounts(settings: Settings, inventory: Inventory) -> dict[str, str]:
    """Create the demo accounts once, with random passwords kept beside the demo database."""
    logins_file = settings.data_dir / "demo-logins.json"
    if logins_file.exists():
        logins: dict[str, str] = json.loads(logins_file.read_text(encoding="utf-8"))
        return logins
    database = await _open_database(settings)
    logins = {}
    # The first two rooms of whatever inventory the demo runs on, and a worker in every team so that the
    # orders the rules open are assigned ("worker" in the first team, "worker-<team>" in the others).
    rooms = sorted(inventory.rooms)[:2]
    accounts: list[tuple[str, Role, tuple[str, ...], str | None]] = [
        ("admin", Role.ADMIN, (), None),
        ("staff", Role.STAFF, (), None),
        ("cashier", Role.CASHIER, (), None),
    ]
    for index, team in enumerate(sorted(inventory.teams)):
        accounts.append(("worker" if index == 0 else f"worker-{team}", Role.WORKER, (), team))
    accounts += [(f"student{n or ''}", Role.STUDENT, (room,), None) for n, room in enumerate(rooms)]
    try:
        async with database.session() as session:
            for username, role, account_rooms, account_team in accounts:
                password = generate_password()
                await add_account(session, NewAccount(username, role, password, account_rooms, account_team), inventory)
                logins[username] = password
            await session.commit()
    finally:
        await database.close()
    logins_file.write_text(json.dumps(logins, indent=2), encoding="utf-8")
    logins_file.chmod(0o600)
    return logins


async def _demo_balances(settings: Settings, inventory: Inventory, opening_fen: int = 5000) -> None:
    """Every demo room starts with 50 yuan (once: the entries are keyed), so the demo campus has light."""
    database = await _open_database(settings)
    try:
        await ensure_wallets(database, sorted(inventory.rooms))
        async with database.session() as session:
            now = datetime.now(UTC)
            for room in sorted(inventory.rooms):
                key, cause = f"demo:opening:{room}", "demo opening balance"
                await post(session, room, "adjustment", opening_fen, now, key=key, cause=cause)
            await session.commit()
    finally:
        await database.close()


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port (0 picks a free one)")] = 8000,
) -> None:
    """Run the demo campus from devices.yaml with demo accounts, on embedded SQLite, and print the logins."""
    base = Settings()
    # The demo never touches a configured production database, broker or InfluxDB.
    settings = Settings(
        data_dir=base.data_dir / "demo",
        inventory=base.inventory,
        api_host=host,
        api_port=port,
        timezone=base.timezone,
        log_level=base.log_level,
    )
    settings.database_url = None
    settings.mqtt_url = "embedded"
    settings.influx.url = "embedded"
    settings.payments.sandbox = True  # the demo tops up without real money
    demo_files = Path(__file__).parent / "schedules" / "demo"
    settings.schedules.calendar_file = base.schedules.calendar_file or demo_files / "calendar.yaml"
    settings.schedules.seed_file = base.schedules.seed_file or demo_files / "schedules.yaml"
    _setup_logging(settings.log_level)
    inventory = _load_inventory_or_exit(settings.inventory)
    rules = _load_rules_or_exit(base, inventory)
    logins = asyncio.run(_demo_accounts(settings, inventory))
    asyncio.run(_demo_balances(settings, inventory))
    banner = ["demo logins (kept in " + str(settings.data_dir / "demo-logins.json") + "):"]
    banner += [f"  {name:<9} {password}" for name, password in logins.items()]
    try:
        event_loop.run(_serve(settings, inventory, rules, banner, simulate=True))
    except ComponentFailedError as failure:
        raise _fail(f"houqin stopped because a component failed: {failure}") from None
    except (OSError, KeyFileError, ConfigError, ScheduleInvalidError) as error:
        raise _fail(str(error)) from None


@app.command()
def check(
    path: Annotated[Path | None, typer.Argument(help="Inventory file (default: setting inventory)")] = None,
    rule_files: Annotated[
        list[Path] | None, typer.Option("--rules", help="Site rule file to check too (besides setting rule_files)")
    ] = None,
) -> None:
    """Validate the inventory and the rule files (shipped and site); print a summary, or every error with
    file:line: path (exit 1)."""
    settings = Settings()
    inventory_path = path or settings.inventory
    inventory = _load_inventory_or_exit(inventory_path)
    rules = _load_rules_or_exit(settings, inventory, rule_files or [])
    typer.echo(f"{inventory_path}: OK — {inventory.site.name}")
    for key, count in inventory.summary().items():
        typer.echo(f"  {key:<22} {count}")
    watched = sum(applies(rule, device, inventory) for rule in rules for device in inventory.devices.values())
    files = [DEFAULT_RULES, *settings.rule_files, *(rule_files or [])]
    typer.echo(f"rules: OK — {len(rules)} rules from {len(files)} file(s), {watched} device watches")


@app.command()
def config() -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(masked_settings(Settings()), indent=2, ensure_ascii=False, default=str))


async def _on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """``work`` on the configured database as it is (no migration first), then the pool closed."""
    database = _database(settings)
    try:
        return await work(database)
    finally:
        await database.close()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Apply schema migrations to the configured database."""
    settings = Settings()

    async def upgrade(database: Database) -> tuple[str | None, str | None]:
        before = await current_revision(database)
        await upgrade_database(database, revision)
        return before, await current_revision(database)

    try:
        before, after = asyncio.run(_on_database(settings, upgrade))
    except OSError as error:
        raise _fail(f"cannot reach the database: {error}") from None
    typer.echo(f"database schema: {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and the one this houqin needs."""
    settings = Settings()

    revision = asyncio.run(_on_database(settings, current_revision))
    typer.echo(f"database: {revision or 'empty'}; houqin needs: {head_revision()}")


@db_app.command("grant-reader")
def db_grant_reader(role: Annotated[str, typer.Argument(help="An existing PostgreSQL role, e.g. grafana")]) -> None:
    """Let a PostgreSQL role read houqin's tables (not account secrets): the login Grafana's SQL panels use.
    Run it again after `houqin db upgrade` so new tables are readable."""
    from houqin.store.reader import grant_reader

    async def grant(database: Database) -> list[str]:
        return await grant_reader(database, role)

    try:
        tables = asyncio.run(_on_database(Settings(), grant))
    except ValueError as error:
        raise _fail(str(error)) from None
    typer.echo(f"{role} may read {len(tables)} tables and who each user is (not their password hashes)")


async def _with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    database = await _open_database(settings)
    try:
        async with database.session() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await database.close()


@users_app.command("add")
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
    inventory = _load_inventory_or_exit(settings.inventory)
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
        asyncio.run(_with_session(settings, work))
    except AccountError as error:
        raise _fail(f"cannot add {username!r}: {error}") from None
    typer.echo(f"added {role.value} {username}" + (f" with password {password}" if generate else ""))


@users_app.command("import")
def users_import(
    csv_path: Annotated[
        Path, typer.Argument(help="CSV with columns username, role[, password, rooms, team, display_name]")
    ],
) -> None:
    """Create many accounts from a CSV, all or none; prints generated passwords as CSV."""
    settings = Settings()
    inventory = _load_inventory_or_exit(settings.inventory)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise _fail(f"{csv_path}: {error.strerror}") from None

    async def work(session: AsyncSession) -> ImportResult:
        return await import_accounts(session, text, str(csv_path), inventory)

    try:
        result = asyncio.run(_with_session(settings, work))
    except AccountError as error:
        raise _fail(f"{error}\nnothing was imported") from None
    typer.echo(f"imported {len(result.created)} accounts", err=True)
    if result.generated_passwords:
        typer.echo("username,password")
        for username, password in result.generated_passwords.items():
            typer.echo(f"{username},{password}")


@users_app.command("list")
def users_list() -> None:
    """List accounts with their role, team and rooms."""

    async def work(session: AsyncSession) -> list[User]:
        return list((await session.execute(select(User).order_by(User.username))).scalars())

    for user in asyncio.run(_with_session(Settings(), work)):
        extra = user.team or ",".join(user.room_ids)
        typer.echo(f"{user.username:<24} {user.role:<8} {'active' if user.active else 'disabled':<9} {extra}")


async def _with_book(settings: Settings, work: Callable[[ScheduleBook], Awaitable[T]]) -> T:
    inventory = _load_inventory_or_exit(settings.inventory)
    database = await _open_database(settings)
    try:
        return await work(ScheduleBook(database, inventory, settings.tz))
    finally:
        await database.close()


@schedules_app.command("seed")
def schedules_seed(file: Annotated[Path, typer.Argument(help="YAML file with a schedules list")]) -> None:
    """Create or replace (by name) the schedules of a file; contradictions are reported and nothing is kept
    of a schedule that has them."""
    settings = Settings()
    _setup_logging(settings.log_level)
    try:
        specs = load_schedule_file(file)
    except ConfigError as error:
        raise _fail(str(error)) from None

    async def work(book: ScheduleBook) -> tuple[int, int]:
        return await book.seed(specs, "cli", datetime.now(UTC))

    try:
        created, replaced = event_loop.run(_with_book(settings, work))
    except ScheduleInvalidError as error:
        raise _fail(f"{file}: {error}") from None
    typer.echo(f"{created} schedules created, {replaced} replaced")


@schedules_app.command("calendar")
def schedules_calendar(file: Annotated[Path, typer.Argument(help="YAML file with terms and days")]) -> None:
    """Import a school calendar: terms by name and days by date are added or replaced."""
    settings = Settings()
    _setup_logging(settings.log_level)
    try:
        content = load_calendar_file(file)
    except ConfigError as error:
        raise _fail(str(error)) from None

    async def work(book: ScheduleBook) -> None:
        await book.import_calendar(content)

    event_loop.run(_with_book(settings, work))
    typer.echo(f"{len(content.terms)} terms and {len(content.days)} days imported")


@app.command()
def fault(
    device: Annotated[str, typer.Argument(help="Device id from the inventory")],
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(FAULTS)}")],
    clear: Annotated[bool, typer.Option("--clear", help="End the fault instead of starting it")] = False,
    url: Annotated[str, typer.Option(help="The running houqin (demo or run --simulate)")] = "http://127.0.0.1:8000",
    username: Annotated[str, typer.Option(help="A staff or admin account")] = "admin",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
) -> None:
    """Start (or --clear) a fault on a simulated device of a running houqin, through its API."""
    import httpx

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("password", hide_input=True)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            signed = client.post("/api/v1/auth/token", data={"username": username, "password": password})
            if signed.status_code != 200:
                raise _fail(f"cannot sign in as {username}: {signed.json().get('detail', signed.status_code)}")
            headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
            body = {"device": device, "fault": name, "active": not clear}
            answer = client.post("/api/v1/simulation/faults", json=body, headers=headers)
    except httpx.HTTPError as error:
        raise _fail(f"cannot reach houqin at {url}: {error}") from None
    if answer.status_code != 200:
        raise _fail(f"refused: {answer.json().get('detail', answer.status_code)}")
    active = answer.json()["faults"]
    typer.echo("active faults: " + (", ".join(f"{d}: {'+'.join(f)}" for d, f in active.items()) or "none"))


@grafana_app.command("generate")
def grafana_generate(
    check: Annotated[bool, typer.Option("--check", help="Only report files that are out of date")] = False,
) -> None:
    """Write grafana/dashboards/*.json and the provisioning files from the dashboards as code."""
    from grafana.generate import stale, write

    changed = stale() if check else write()
    for path in changed:
        typer.echo(f"{'out of date' if check else 'written'}: {path}")
    if check and changed:
        raise _fail("generated Grafana files are out of date: run `houqin grafana generate`")


@grafana_app.command("publish")
def grafana_publish(
    url: Annotated[str, typer.Option(help="Grafana's base URL, e.g. https://grafana.campus.edu.cn")],
    token: Annotated[str, typer.Option(envvar="GRAFANA_TOKEN", help="A service account token (Editor or Admin)")],
    influx_url: Annotated[
        str | None, typer.Option(help="InfluxDB as Grafana reaches it (default: setting influx.url)")
    ] = None,
    postgres_host: Annotated[
        str | None, typer.Option(help="PostgreSQL host:port as Grafana reaches it (default: from database_url)")
    ] = None,
    postgres_user: Annotated[
        str | None, typer.Option(help="A read-only PostgreSQL role for Grafana (default: database_url's user)")
    ] = None,
    postgres_password: Annotated[
        str | None, typer.Option(envvar="GRAFANA_DB_PASSWORD", help="That role's password")
    ] = None,
) -> None:
    """Create or update the houqin folder, data sources and dashboards in a running Grafana."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException
    from niquests.exceptions import RequestException

    from grafana.datasources import site_datasources
    from grafana.generate import dashboards
    from grafana.publisher import GrafanaPublisher

    settings = Settings()
    try:
        sources = site_datasources(settings, influx_url, postgres_host, postgres_user, postgres_password)
    except ValueError as error:
        raise _fail(str(error)) from None
    publisher = GrafanaPublisher(GrafanaApi.from_url(url, credential=token, timeout=10.0))
    try:
        report = publisher.publish(sources, list(dashboards(settings.timezone).values()))
    except GrafanaException as error:
        raise _fail(f"Grafana at {url} refused: {error.message}") from None
    except RequestException as error:
        raise _fail(f"cannot reach Grafana at {url}: {error}") from None
    for line in report.lines():
        typer.echo(line)


def _mqtt_login(url: str | None, what: str) -> tuple[str, str] | None:
    parts = urlsplit(url or "")
    if url is None or parts.scheme not in ("mqtt", "mqtts"):
        return None
    if not parts.username or not parts.password:
        raise _fail(f"{what} names no user and password (mqtt://user:password@host:port)")
    return parts.username, parts.password


def _mqtt_logins(settings: Settings) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """houqin's broker login and the simulator's, where their settings name one."""
    return (_mqtt_login(settings.mqtt_url, "setting mqtt_url"),
            _mqtt_login(settings.simulator_mqtt_url, "setting simulator_mqtt_url"))  # fmt: skip


def _device_secret(settings: Settings) -> str:
    if settings.mqtt_device_secret is None:
        raise _fail("set HOUQIN_MQTT_DEVICE_SECRET: device passwords are derived from it")
    return settings.mqtt_device_secret.get_secret_value()


def _write_or_print(text: str, out: Path | None, mode: int = 0o644) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    out.chmod(mode)
    typer.echo(f"written: {out}", err=True)


@mqtt_app.command("acl")
def mqtt_acl(out: Annotated[Path | None, typer.Option(help="Write to this file instead of printing")] = None) -> None:
    """A Mosquitto ACL file: each MQTT device publishes only its own state topic and reads only its own
    command topics; houqin (the user of setting mqtt_url) reads every state topic and publishes every
    command; the user of setting simulator_mqtt_url, if any, speaks for every device."""
    from houqin.mqtt_acl import mosquitto_acl

    settings = Settings()
    inventory = _load_inventory_or_exit(settings.inventory)
    houqin_login, simulator = _mqtt_logins(settings)
    try:
        acl = mosquitto_acl(inventory, houqin_login[0] if houqin_login else "houqin", simulator and simulator[0])
    except ValueError as error:
        raise _fail(str(error)) from None
    _write_or_print(acl, out)


@mqtt_app.command("passwd")
def mqtt_passwd(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of printing")] = None,
) -> None:
    """A Mosquitto password file: houqin's login (setting mqtt_url), the simulator's (simulator_mqtt_url) if
    set, and every MQTT device with its password derived from setting mqtt_device_secret."""
    from houqin.mqtt_acl import mosquitto_passwords

    settings = Settings()
    inventory = _load_inventory_or_exit(settings.inventory)
    secret = _device_secret(settings)
    users = dict(login for login in _mqtt_logins(settings) if login is not None)
    try:
        text = mosquitto_passwords(inventory, secret, users)
    except ValueError as error:
        raise _fail(str(error)) from None
    _write_or_print(text, out, 0o600)


@mqtt_app.command("password")
def mqtt_password(device: Annotated[str, typer.Argument(help="An MQTT device of the inventory")]) -> None:
    """The broker password to configure on one device (its user name is its id)."""
    from houqin.mqtt_acl import device_password

    settings = Settings()
    inventory = _load_inventory_or_exit(settings.inventory)
    secret = _device_secret(settings)
    if device not in {found.id for found in inventory.mqtt_devices()}:
        raise _fail(f"no MQTT device {device!r} in {settings.inventory}")
    typer.echo(device_password(secret, device))


@app.command()
def version() -> None:
    """Print houqin's version."""
    typer.echo(__version__)


def main() -> None:
    app()
