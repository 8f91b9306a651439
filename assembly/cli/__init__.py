"""The ``houqin`` command: one small module per command group, each building what it needs through the
assembly or the core."""

from __future__ import annotations

import typer

from assembly.cli import billing, db, fault, grafana, mqtt, probe, report, schedules, serve, site, users

app = typer.Typer(
    name="houqin",
    help="houqin (后勤): campus logistics — meters, repair orders, prepaid dorm electricity, lighting, broadcast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(serve.run)
app.command()(serve.demo)
app.command()(fault.fault)
app.command()(probe.probe)
app.command()(site.check)
app.command()(site.config)
app.command()(site.version)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(billing.app, name="billing")
app.add_typer(schedules.app, name="schedules")
app.add_typer(grafana.app, name="grafana")
app.add_typer(mqtt.app, name="mqtt")
app.add_typer(report.app, name="report")


def main() -> None:
    app(prog_name="houqin")
