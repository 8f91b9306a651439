"""Process settings: environment (prefix ``HOUQIN_``), an optional ``.env`` file, safe embedded defaults."""

from __future__ import annotations

import os
import secrets
from datetime import time
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from houqin.store.database import POOL_SIZE

EMBEDDED = "embedded"
JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name


DEFAULT_TIMEZONE = "Asia/Shanghai"  # where neither the inventory nor the settings name one


class InfluxSettings(BaseModel):
    """Where readings go. ``url = "embedded"`` keeps them in a local SQLite telemetry file."""

    url: str = EMBEDDED
    api: Literal["v1", "v2"] = "v2"
    # v2 (InfluxDB 2.x / 3.x / 1.8+ compatibility API)
    token: SecretStr | None = None
    org: str = "houqin"
    bucket: str = "houqin"
    # v1 (/write with database and retention policy)
    database: str = "houqin"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None

    @property
    def embedded(self) -> bool:
        return self.url == EMBEDDED


class TelemetrySettings(BaseModel):
    """How readings are batched, spooled while InfluxDB is away, and kept by the embedded store."""

    batch_points: int = Field(default=5000, ge=1, le=1_000_000, description="Points per InfluxDB write")
    flush_seconds: float = Field(default=1.0, gt=0, le=60, description="Longest a point waits before a write")
    write_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    query_timeout_seconds: float = Field(
        default=60.0, gt=0, le=600, description="Longest an InfluxDB query may take (a year's report of a campus)"
    )
    durable: bool = Field(
        default=False,
        description="Readings survive a crash: each reaches the spool or the embedded store's disk before a "
        "poll counts or an MQTT message is acknowledged (costs an fsync per batch)",
    )
    spool_max_bytes: int = Field(default=1 << 30, ge=1 << 20, description="Disk the spool may use (default 1 GiB)")
    replay_points_per_second: int = Field(
        default=50_000, ge=100, description="Pace of writing the spool back once InfluxDB answers again"
    )
    self_report_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How often houqin writes its own figures (measurement houqin)"
    )
    latest_lookback_days: int = Field(default=7, ge=1, le=3650, description="How far back 'latest' values look")
    embedded_raw_days: int = Field(default=35, ge=1, le=3650, description="Embedded store: raw readings kept")
    embedded_rollup_days: int = Field(default=800, ge=1, le=36500, description="Embedded store: hourly rollups kept")


class RepairSettings(BaseModel):
    """Service levels and time limits of repair orders."""

    sla_hours: dict[str, float] = Field(
        default_factory=lambda: {"urgent": 4.0, "high": 24.0, "normal": 72.0, "low": 168.0},
        description="Hours from opening to due, per priority",
    )
    close_after_days: float = Field(default=3.0, gt=0, description="A resolved order closes itself after this")
    reopen_within_days: float = Field(default=7.0, gt=0, description="How long a resolved order may be reopened")
    fault_returns_within_hours: float = Field(
        default=24.0, ge=0, description="A fault back this soon after its order was resolved reopens that order"
    )

    @field_validator("sla_hours")
    @classmethod
    def _every_priority(cls, value: dict[str, float]) -> dict[str, float]:
        missing = {"urgent", "high", "normal", "low"} - value.keys()
        if missing:
            raise ValueError(f"sla_hours needs every priority; missing {', '.join(sorted(missing))}")
        return value


# What a robot or webhook hears of: repair-order news, and the daily summary of dorm rooms needing staff.
OrderNews = Literal["opened", "reopened", "assigned", "escalated", "resolved", "daily_summary"]
RoomAlarm = Literal[
    "low_balance", "cut_off", "cut_deferred", "restored", "tripped", "trip_restored", "appliance", "locked", "unlocked"
]


class Webhook(BaseModel):
    """A group robot or endpoint that hears about repair orders (and, if it asks, the daily summary)."""

    kind: Literal["wecom", "dingtalk", "json"]
    url: SecretStr = Field(description="the robot's webhook URL, key or access token included")
    secret: SecretStr | None = Field(
        default=None, description="DingTalk: the SEC... signing secret; json: HMAC-SHA256 key of X-Houqin-Signature"
    )
    events: list[OrderNews] = Field(
        default_factory=lambda: list[OrderNews](["opened", "reopened", "escalated", "resolved"])
    )


class DormWebhook(BaseModel):
    """The school's dorm system: hears of every room alarm (the notices the students see) as signed JSON."""

    url: SecretStr
    secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 key of the X-Houqin-Signature header")
    kinds: list[RoomAlarm] = Field(default_factory=lambda: list(get_args(RoomAlarm)))


class NotifySettings(BaseModel):
    webhooks: list[Webhook] = Field(default_factory=list, description="JSON list, e.g. [{kind: wecom, url: ...}]")
    max_attempts: int = Field(default=6, ge=1, le=50, description="Tries per message before it is logged as lost")
    dorm_webhooks: list[DormWebhook] = Field(default_factory=list, description="JSON list: [{url, secret, kinds}]")
    summary_at: time = Field(default=time(8, 0), description="Local time of the daily summary (daily_summary)")


class BillingSettings(BaseModel):
    """Prepaid electricity: when rooms lose and regain power, and what a room can physically draw."""

    cutoff_fen: int = Field(default=0, description="Power is cut when the balance reaches this (negative: overdraft)")
    restore_fen: int = Field(default=0, description="Power returns when the balance is above this again")
    max_room_kw: float = Field(default=10.0, gt=0, description="A meter advancing faster than this is not charged")
    low_balance_fen: list[int] = Field(
        default_factory=lambda: [1000, 300], description="Warn the room once each time its balance falls to these"
    )
    protected_window: str | None = Field(
        default=None, description="HH:MM-HH:MM local: no cut-off inside it (cut when it ends), e.g. 22:00-07:00"
    )
    power_limit_w: float | None = Field(
        default=None, gt=0, description="Trip a room drawing more than this (a room's own power_limit_w wins)"
    )
    trip_after_s: float = Field(default=10, gt=0, le=3600, description="Over the limit this long trips the relay")
    trip_restore_min: float = Field(default=5, gt=0, le=24 * 60, description="A tripped room gets power back after")

    @field_validator("protected_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            window_bounds(value)
        return value

    @property
    def window(self) -> tuple[time, time] | None:
        return window_bounds(self.protected_window) if self.protected_window else None


def window_bounds(value: str) -> tuple[time, time]:
    """``22:00-07:00`` as two times (the end before the start runs over midnight)."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise ValueError(f"{value!r} is not a window HH:MM-HH:MM") from None
    if start == end:
        raise ValueError(f"{value!r} is an empty window")
    return start, end


class AlipaySettings(BaseModel):
    """An Alipay merchant application (RSA2 keys). Key files are PEM, or the bare base64 Alipay shows."""

    app_id: str = Field(min_length=1, description="The application's APPID")
    seller_id: str = Field(default="", description="The merchant's user id (2088…); notifications must name it")
    app_private_key_file: Path = Field(description="The application's private key: signs payment requests")
    alipay_public_key_file: Path = Field(description="Alipay's public key: verifies notifications")
    gateway: str = "https://openapi.alipay.com/gateway.do"


class WechatPaySettings(BaseModel):
    """A WeChat Pay (API v3) merchant."""

    mchid: str = Field(min_length=1, description="The merchant id")
    appid: str = Field(min_length=1, description="The APPID the payments are made to")
    merchant_serial: str = Field(min_length=1, description="Serial number of the merchant API certificate")
    merchant_private_key_file: Path = Field(description="The merchant API private key (apiclient_key.pem)")
    api_v3_key: SecretStr = Field(description="The 32-character API v3 key: decrypts notifications")
    platform_keys: dict[str, Path] = Field(
        min_length=1, description="WeChat Pay's public keys or platform certificates (PEM) by serial"
    )
    api_base: str = "https://api.mch.weixin.qq.com"

    @field_validator("api_v3_key")
    @classmethod
    def _aes_256_key(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) != 32:
            raise ValueError("the API v3 key is 32 characters")
        return value


class ScheduleSettings(BaseModel):
    """Lighting and broadcast schedules (``HOUQIN_SCHEDULES__…``)."""

    late_grace_s: float = Field(
        default=30, ge=1, le=600,
        description="A programme is played at most this late; later it is recorded as missed, not played",
    )  # fmt: skip
    command_deadline_s: float = Field(
        default=300, ge=5, le=86400, description="A lighting command is retried until this long after it was due"
    )
    seed_file: Path | None = Field(default=None, description="Schedules (YAML) created or replaced at start")
    calendar_file: Path | None = Field(default=None, description="A calendar (YAML) imported at start")


class Dlt645Settings(BaseModel):
    """What DL/T 645 relay commands (0x1C) carry to be obeyed (``HOUQIN_DLT645__…``): the meters' password
    and its level, and the operator code they record. Secrets: never in the inventory."""

    password: SecretStr | None = Field(
        default=None, description="The meters' 6-digit password (unset: no relay commands)"
    )
    password_level: int = Field(default=2, ge=0, le=99, description="The password's level (PA), usually 02 or 04")
    operator: str = Field(default="00000000", pattern=r"^[0-9]{8}$", description="The operator code the meter records")
    command_minutes: int = Field(
        default=5, ge=1, le=1440, description="A relay command not carried out within this is void at the meter"
    )
    time_sync_at: time | None = Field(
        default=time(3, 0),
        description="Local time of the daily broadcast of the time to every 645 bus (unset: never); meters that "
        "bill by time of use keep their clocks by it",
    )

    @field_validator("time_sync_at", mode="before")
    @classmethod
    def _empty_is_never(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("password")
    @classmethod
    def _six_digits(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not (len(value.get_secret_value()) == 6 and value.get_secret_value().isdigit()):
            raise ValueError("the meter password is 6 digits")
        return value


class PaymentSettings(BaseModel):
    """Top-up providers. The sandbox credits whoever asks: for the demo and tests only."""

    sandbox: bool = Field(default=False, description="Enable the sandbox provider (never where money is real)")
    campus_card: bool = Field(default=True, description="Cashiers credit rooms paid at the counter")
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Where the providers reach this houqin (notify URLs)"
    )
    alipay: AlipaySettings | None = None
    wechat: WechatPaySettings | None = None


class EnergySettings(BaseModel):
    """Energy reports (``HOUQIN_ENERGY__…``)."""

    co2_kg_per_kwh: float = Field(
        default=0.5703, ge=0, le=2,
        description="Grid emission factor, kg CO2 per kWh (default: the national grid average China's Ministry "
        "of Ecology and Environment published for 2022; use your regional grid's)",
    )  # fmt: skip
    kgce_per_kwh: float = Field(
        default=0.1229, ge=0, le=1, description="Standard coal per kWh of electricity (the equivalent value, GB/T 2589)"
    )


class Settings(BaseSettings):
    """Every setting has a default that runs the embedded, single-process campus."""

    model_config = SettingsConfigDict(
        env_prefix="HOUQIN_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    data_dir: Path = Field(default=Path("data"), description="Where SQLite files, the spool and secrets live")
    inventory: Path = Field(default=Path("devices.yaml"), description="The campus inventory file")
    rule_files: list[Path] = Field(default_factory=list, description="Site rule files besides the shipped set")
    max_clock_skew_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="On PostgreSQL: a process whose clock is further off the database's is refused",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is a SQLite file in the data directory"
    )
    database_pool_size: int = Field(
        default=POOL_SIZE,
        ge=1,
        le=500,
        description="PostgreSQL connections this process keeps open (up to 10 more at peaks)",
    )
    mqtt_url: str = Field(default=EMBEDDED, description="mqtt://user:pass@host:port, or 'embedded'")
    embedded_mqtt_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the embedded broker on 127.0.0.1 (0: any free port)"
    )
    mqtt_client_id: str = Field(
        default="houqin", description="Fixed MQTT client id: the broker keeps this session's messages while away"
    )
    mqtt_shared_group: str | None = Field(
        default=None,
        description="Several processes: they split the devices' messages as this shared subscription group "
        "($share/<group>/…); give each process its own mqtt_client_id",
    )
    simulator_mqtt_url: str | None = Field(
        default=None, description="With --simulate on a broker with access rules: the simulated devices' own login"
    )
    mqtt_device_secret: SecretStr | None = Field(
        default=None, description="Derives each MQTT device's broker password (houqin mqtt passwd / password)"
    )
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    repairs: RepairSettings = Field(default_factory=RepairSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    payments: PaymentSettings = Field(default_factory=PaymentSettings)
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings)
    dlt645: Dlt645Settings = Field(default_factory=Dlt645Settings)
    energy: EnergySettings = Field(default_factory=EnergySettings)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    timezone: str | None = Field(
        default=None,
        description="The campus clock (IANA name). The inventory's site.timezone is the campus's own; this "
        "overrides it only where the inventory names none, and a disagreement is refused at start",
    )
    grafana_url: str | None = Field(
        default=None, description="Where staff browsers open Grafana: the staff pages link to its dashboards"
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="Signs API tokens; generated once into the data directory when unset"
    )
    jwt_ttl_minutes: int = Field(default=12 * 60, ge=1, le=60 * 24 * 30)
    login_max_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description=(
            "Failed sign-ins for one name from one address before each further one doubles the wait "
            "(1 s, 2 s … 15 min); twenty times as many from all addresses hold every address that failed"
        ),
    )
    log_level: str = "INFO"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if not value:  # unset, or empty (a compose file passing an unset variable through)
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The campus clock: resolved against the inventory at start (``with_site_timezone``)."""
        return ZoneInfo(self.timezone or DEFAULT_TIMEZONE)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'houqin.db').resolve()}"

    @property
    def mqtt_embedded(self) -> bool:
        return self.mqtt_url == EMBEDDED

    def sandbox_key(self) -> bytes:
        """The sandbox provider's signing key, generated once into the data directory."""
        return self._data_secret("sandbox-key").encode()

    def resolve_jwt_secret(self) -> str:
        """The configured secret, else one generated once and kept (mode 0600) in the data directory."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return self._data_secret(JWT_SECRET_FILE)

    def _data_secret(self, name: str) -> str:
        """A random secret kept in ``data_dir/name`` (mode 0600), made the first time it is asked for."""
        path = self.data_dir / name
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        # O_EXCL: when two processes start together, one writes and the other reads the winner's secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
        return value


def mask_url_password(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``; other URLs unchanged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def masked_settings(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, with every secret and URL password masked."""

    def mask(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "***"
        if isinstance(value, dict):
            return {key: mask(item) for key, item in value.items()}
        if isinstance(value, list):
            return [mask(item) for item in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, str) and "://" in value:
            return mask_url_password(value)
        return value

    data = mask(settings.model_dump())
    data["database_url"] = mask_url_password(settings.effective_database_url)
    data["jwt_secret"] = (
        "*** (from settings)" if settings.jwt_secret else f"*** (kept in {settings.data_dir / JWT_SECRET_FILE})"
    )
    return dict(data)
