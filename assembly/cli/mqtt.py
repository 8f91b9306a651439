"""``houqin mqtt``: the broker's logins and access rules for the inventory's devices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from assembly.cli.common import fail, inventory_or_exit
from houqin.mqtt_acl import device_password, mosquitto_acl, mosquitto_passwords
from houqin.settings import Settings

app = typer.Typer(help="The MQTT broker's access rules for the inventory's devices.", no_args_is_help=True)


def _mqtt_login(url: str | None, what: str) -> tuple[str, str] | None:
    parts = urlsplit(url or "")
    if url is None or parts.scheme not in ("mqtt", "mqtts"):
        return None
    if not parts.username or not parts.password:
        raise fail(f"{what} names no user and password (mqtt://user:password@host:port)")
    return parts.username, parts.password


def _mqtt_logins(settings: Settings) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """houqin's broker login and the simulator's, where their settings name one."""
    return (_mqtt_login(settings.mqtt_url, "setting mqtt_url"),
            _mqtt_login(settings.simulator_mqtt_url, "setting simulator_mqtt_url"))  # fmt: skip


def _device_secret(settings: Settings) -> str:
    if settings.mqtt_device_secret is None:
        raise fail("set HOUQIN_MQTT_DEVICE_SECRET: device passwords are derived from it")
    return settings.mqtt_device_secret.get_secret_value()


def _write_or_print(text: str, out: Path | None, mode: int = 0o644) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    out.chmod(mode)
    typer.echo(f"written: {out}", err=True)


@app.command("acl")
def mqtt_acl(out: Annotated[Path | None, typer.Option(help="Write to this file instead of printing")] = None) -> None:
    """A Mosquitto ACL file: each MQTT device publishes only its own state topic and reads only its own
    command topics; houqin (the user of setting mqtt_url) reads every state topic and publishes every
    command; the user of setting simulator_mqtt_url, if any, speaks for every device."""
    settings = Settings()
    inventory = inventory_or_exit(settings.inventory)
    houqin_login, simulator = _mqtt_logins(settings)
    try:
        acl = mosquitto_acl(inventory, houqin_login[0] if houqin_login else "houqin", simulator and simulator[0])
    except ValueError as error:
        raise fail(str(error)) from None
    _write_or_print(acl, out)


@app.command("passwd")
def mqtt_passwd(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of printing")] = None,
) -> None:
    """A Mosquitto password file: houqin's login (setting mqtt_url), the simulator's (simulator_mqtt_url) if
    set, and every MQTT device with its password derived from setting mqtt_device_secret."""
    settings = Settings()
    inventory = inventory_or_exit(settings.inventory)
    secret = _device_secret(settings)
    users = dict(login for login in _mqtt_logins(settings) if login is not None)
    try:
        text = mosquitto_passwords(inventory, secret, users)
    except ValueError as error:
        raise fail(str(error)) from None
    _write_or_print(text, out, 0o600)


@app.command("password")
def mqtt_password(device: Annotated[str, typer.Argument(help="An MQTT device of the inventory")]) -> None:
    """The broker password to configure on one device (its user name is its id)."""
    settings = Settings()
    inventory = inventory_or_exit(settings.inventory)
    secret = _device_secret(settings)
    if device not in {found.id for found in inventory.mqtt_devices()}:
        raise fail(f"no MQTT device {device!r} in {settings.inventory}")
    typer.echo(device_password(secret, device))
