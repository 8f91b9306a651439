"""The two data sources every houqin dashboard names by uid: InfluxDB queried with InfluxQL, and the
PostgreSQL store. The same definitions are published over Grafana's HTTP API and written, with
environment placeholders instead of secrets, into the provisioning folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

from grafana.builder import INFLUX, INFLUX_UID, POSTGRES, POSTGRES_UID
from houqin.settings import EMBEDDED, Settings


@dataclass(frozen=True)
class InfluxSource:
    """InfluxDB as Grafana reaches it. InfluxDB 2.x/3.x answer InfluxQL for ``database`` through a DBRP
    mapping and take the API token in an ``Authorization: Token`` header; 1.x takes a user and password."""

    url: str
    database: str
    token: str | None = None
    user: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class PostgresSource:
    host: str  # host:port as Grafana reaches it
    database: str
    user: str
    password: str


def influx_datasource(source: InfluxSource) -> dict[str, Any]:
    json_data: dict[str, Any] = {"dbName": source.database, "httpMode": "POST", "version": "InfluxQL"}
    secure: dict[str, str] = {}
    if source.token:
        json_data["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = f"Token {source.token}"
    definition: dict[str, Any] = {
        "uid": INFLUX_UID,
        "name": "houqin InfluxDB",
        "type": INFLUX["type"],
        "access": "proxy",
        "url": source.url,
        "isDefault": True,
        "jsonData": json_data,
    }
    if source.user:
        definition["user"] = source.user
        secure["password"] = source.password or ""
    if secure:
        definition["secureJsonData"] = secure
    return definition


def postgres_datasource(source: PostgresSource) -> dict[str, Any]:
    return {
        "uid": POSTGRES_UID,
        "name": "houqin PostgreSQL",
        "type": POSTGRES["type"],
        "access": "proxy",
        "url": source.host,
        "user": source.user,
        "jsonData": {
            "database": source.database,
            "sslmode": "disable",
            "postgresVersion": 1500,
            "timescaledb": False,
            "maxOpenConns": 10,
        },
        "secureJsonData": {"password": source.password},
    }


def site_datasources(
    settings: Settings,
    influx_url: str | None = None,
    postgres_host: str | None = None,
    postgres_user: str | None = None,
    postgres_password: str | None = None,
) -> list[dict[str, Any]]:
    """The data sources of a site, from its settings, with the addresses Grafana reaches them at where
    those differ from houqin's. ``ValueError`` names what is missing."""
    influx = settings.influx
    if influx.url == EMBEDDED and influx_url is None:
        raise ValueError("Grafana needs InfluxDB: set HOUQIN_INFLUX__URL, or pass --influx-url")
    token = influx.token.get_secret_value() if influx.token else None
    password = influx.password.get_secret_value() if influx.password else None
    database = influx.bucket if influx.api == "v2" else influx.database
    sources = [influx_datasource(InfluxSource(influx_url or influx.url, database, token, influx.username, password))]
    if settings.database_url is None or not settings.database_url.startswith("postgresql"):
        raise ValueError("the repair, prepaid and schedule dashboards read PostgreSQL: set HOUQIN_DATABASE_URL")
    url = make_url(settings.database_url)
    host = postgres_host or f"{url.host or 'localhost'}:{url.port or 5432}"
    user = postgres_user or url.username or "postgres"
    secret = postgres_password if postgres_password is not None else (url.password or "")
    sources.append(postgres_datasource(PostgresSource(host, url.database or "houqin", user, str(secret))))
    return sources
