"""``houqin grafana``: the dashboards as JSON files, and published to a running Grafana."""

from __future__ import annotations

from typing import Annotated

import typer

from assembly.cli.common import fail, inventory_or_exit, site_settings_or_exit
from grafana.datasources import site_datasources
from grafana.generate import dashboards, site_of, stale, write
from grafana.http_api import GrafanaError, GrafanaHttpApi, GrafanaUnreachableError
from grafana.publisher import GrafanaPublisher
from houqin.settings import Settings

app = typer.Typer(help="Grafana dashboards: generate the JSON, publish to a running Grafana.", no_args_is_help=True)


@app.command("generate")
def grafana_generate(
    check: Annotated[bool, typer.Option("--check", help="Only report files that are out of date")] = False,
) -> None:
    """Write grafana/dashboards/*.json and the provisioning files from the dashboards as code."""
    changed = stale() if check else write()
    for path in changed:
        typer.echo(f"{'out of date' if check else 'written'}: {path}")
    if check and changed:
        raise fail("generated Grafana files are out of date: run `houqin grafana generate`")


@app.command("publish")
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
    settings = Settings()
    inventory = inventory_or_exit(settings.inventory)
    settings = site_settings_or_exit(settings, inventory)  # days in the campus's zone
    try:
        sources = site_datasources(settings, influx_url, postgres_host, postgres_user, postgres_password)
    except ValueError as error:
        raise fail(str(error)) from None
    with GrafanaHttpApi(url, token) as api:
        try:
            report = GrafanaPublisher(api).publish(
                sources, list(dashboards(site_of(inventory, settings.tz.key)).values())
            )
        except GrafanaError as error:
            raise fail(f"Grafana at {url} refused: {error.message}") from None
        except GrafanaUnreachableError as error:
            raise fail(f"cannot reach Grafana at {url}: {error}") from None
    for line in report.lines():
        typer.echo(line)
