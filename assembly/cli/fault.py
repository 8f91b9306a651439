"""``houqin fault``: start or end a simulated fault on a running demo, through its API."""

from __future__ import annotations

import sys
from typing import Annotated

import httpx
import typer

from assembly.cli.common import fail
from houqin.settings import Settings
from houqin.simulation import FAULTS


def fault(
    device: Annotated[str, typer.Argument(help="Device id from the inventory")],
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(FAULTS)}")],
    clear: Annotated[bool, typer.Option("--clear", help="End the fault instead of starting it")] = False,
    url: Annotated[
        str | None, typer.Option(help="The running houqin (default: settings api_host and api_port)")
    ] = None,
    username: Annotated[str, typer.Option(help="A staff or admin account")] = "admin",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
) -> None:
    """Start (or --clear) a fault on a simulated device of a running houqin, through its API."""
    if url is None:
        settings = Settings()
        host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host  # noqa: S104 - reading it
        url = f"http://[{host}]:{settings.api_port}" if ":" in host else f"http://{host}:{settings.api_port}"
    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("password", hide_input=True)
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            signed = client.post("/api/v1/auth/token", data={"username": username, "password": password})
            if signed.status_code != 200:
                raise fail(f"cannot sign in as {username}: {signed.json().get('detail', signed.status_code)}")
            headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
            body = {"device": device, "fault": name, "active": not clear}
            answer = client.post("/api/v1/simulation/faults", json=body, headers=headers)
    except httpx.HTTPError as error:
        raise fail(f"cannot reach houqin at {url}: {error}") from None
    if answer.status_code != 200:
        raise fail(f"refused: {answer.json().get('detail', answer.status_code)}")
    active = answer.json()["faults"]
    typer.echo("active faults: " + (", ".join(f"{d}: {'+'.join(f)}" for d, f in active.items()) or "none"))
