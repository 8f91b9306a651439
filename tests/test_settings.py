"""Settings: prefix, .env, nested InfluxDB settings, the JWT secret kept in the data directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from houqin.settings import Settings, mask_url_password, masked_settings


def test_defaults_are_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.mqtt_embedded and settings.influx.embedded
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'houqin.db'}"
    assert settings.timezone is None and settings.tz.key == "Asia/Shanghai"  # the inventory usually names it
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)


def test_environment_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("HOUQIN_API_PORT=9100\nHOUQIN_INFLUX__URL=http://influx:8086\n")
    monkeypatch.setenv("HOUQIN_INFLUX__API", "v1")
    monkeypatch.setenv("HOUQIN_MQTT_URL", "mqtt://houqin:pw@broker:1883")
    settings = Settings()
    assert settings.api_port == 9100
    assert settings.influx.url == "http://influx:8086" and settings.influx.api == "v1"
    assert not settings.mqtt_embedded


def test_bad_timezone_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOUQIN_TIMEZONE", "Asia/Beijing")
    with pytest.raises(ValidationError, match="unknown IANA timezone 'Asia/Beijing'"):
        Settings()


def test_jwt_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d")
    first = settings.resolve_jwt_secret()
    assert len(first) >= 32
    assert Settings(data_dir=tmp_path / "d").resolve_jwt_secret() == first
    mode = stat.S_IMODE(os.stat(tmp_path / "d" / "jwt-secret").st_mode)
    assert mode == 0o600
    assert Settings(data_dir=tmp_path / "other").resolve_jwt_secret() != first


def test_masked_settings_hide_every_secret(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://houqin:s3cret@db:5432/houqin",
        mqtt_url="mqtt://houqin:brokerpw@broker:1883",
        jwt_secret="x" * 40,
        influx={"url": "http://influx:8086", "token": "tok3n", "password": "pw1"},
    )
    text = repr(masked_settings(settings))
    for secret in ("s3cret", "brokerpw", "x" * 40, "tok3n", "pw1"):
        assert secret not in text
    assert "houqin:***@db:5432" in text and "houqin:***@broker:1883" in text


def test_mask_url_password_leaves_plain_urls() -> None:
    assert mask_url_password("sqlite+aiosqlite:///data/houqin.db") == "sqlite+aiosqlite:///data/houqin.db"
    assert mask_url_password("mqtt://u:p@h:1") == "mqtt://u:***@h:1"


def test_billing_and_payment_settings_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOUQIN_BILLING__PROTECTED_WINDOW", "22:00-25:00")
    with pytest.raises(ValidationError, match="'22:00-25:00' is not a window HH:MM-HH:MM"):
        Settings()
    monkeypatch.setenv("HOUQIN_BILLING__PROTECTED_WINDOW", "22:00-07:00")
    assert Settings().billing.window is not None
    monkeypatch.setenv("HOUQIN_PAYMENTS__WECHAT__MCHID", "1900000109")
    monkeypatch.setenv("HOUQIN_PAYMENTS__WECHAT__APPID", "wx8888888888888888")
    monkeypatch.setenv("HOUQIN_PAYMENTS__WECHAT__MERCHANT_SERIAL", "5157F09E")
    monkeypatch.setenv("HOUQIN_PAYMENTS__WECHAT__MERCHANT_PRIVATE_KEY_FILE", str(tmp_path / "apiclient_key.pem"))
    monkeypatch.setenv("HOUQIN_PAYMENTS__WECHAT__PLATFORM_KEYS", '{"PUB_KEY_ID_01": "/etc/houqin/pub_key.pem"}')
    monkeypatch.setenv("HOUQIN_PAYMENTS__WECHAT__API_V3_KEY", "too-short")
    with pytest.raises(ValidationError, match="the API v3 key is 32 characters"):
        Settings()
    monkeypatch.setenv("HOUQIN_PAYMENTS__WECHAT__API_V3_KEY", "k" * 32)
    settings = Settings()
    assert settings.payments.wechat is not None
    assert settings.payments.wechat.platform_keys == {"PUB_KEY_ID_01": Path("/etc/houqin/pub_key.pem")}
    assert "k" * 32 not in repr(masked_settings(settings))


def test_the_database_pool_size_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOUQIN_DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValidationError, match="database_pool_size"):
        Settings()
    monkeypatch.setenv("HOUQIN_DATABASE_POOL_SIZE", "40")
    assert Settings().database_pool_size == 40


def test_dlt645_settings_are_checked_and_the_password_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value, message in (("PASSWORD", "12345", "the meter password is 6 digits"),
                                 ("PASSWORD", "12345a", "the meter password is 6 digits"),
                                 ("OPERATOR", "1234", "string should match pattern"),
                                 ("PASSWORD_LEVEL", "100", "less than or equal to 99"),
                                 ("TIME_SYNC_AT", "25:00", "time")):  # fmt: skip
        monkeypatch.setenv(f"HOUQIN_DLT645__{name}", value)
        with pytest.raises(ValidationError, match=rf"(?i)dlt645\.{name.lower()}[\s\S]*{message}"):
            Settings()
        monkeypatch.delenv(f"HOUQIN_DLT645__{name}")
    monkeypatch.setenv("HOUQIN_DLT645__PASSWORD", "135790")
    settings = Settings()
    assert settings.dlt645.password is not None and settings.dlt645.password.get_secret_value() == "135790"
    assert "135790" not in str(masked_settings(settings))
