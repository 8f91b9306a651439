"""``houqin probe``: talk to one device before (or after) it goes into ``devices.yaml`` — read it once the
way houqin will poll it and print each value with its unit, or say plainly why not (no answer, the
meter's refusal, a wrong address, a gateway that cannot be reached)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from assembly.cli.common import fail, inventory_or_exit
from collectors.cjt188.link import Cjt188Link
from collectors.dial_in.line import DialInLine
from collectors.dial_in.listener import DialInListener, ListenError
from collectors.dlt645.link import Dlt645Link
from collectors.link_errors import LinkError
from collectors.modbus_link import ModbusLink
from collectors.modbus_poller import ModbusBusPoller
from houqin.inventory import Inventory
from houqin.inventory.model import Device, DeviceModel, Gateway
from houqin.readings import Reading
from houqin.settings import Settings


def probe(
    device: Annotated[str | None, typer.Argument(help="A device of the inventory, read through its gateway")] = None,
    host: Annotated[str | None, typer.Option(help="A gateway not (yet) in the inventory: its address")] = None,
    port: Annotated[int, typer.Option(help="…and its TCP port")] = 4196,
    model: Annotated[str | None, typer.Option(help="The device's model (a shipped profile or the site's)")] = None,
    unit: Annotated[int | None, typer.Option(help="Modbus unit id")] = None,
    address: Annotated[
        str | None, typer.Option(help="DL/T 645 (12 digits) or CJ/T 188 (14) address; omitted: ask the bus")
    ] = None,
    framing: Annotated[str, typer.Option(help="Modbus over TCP: modbus_tcp or rtu_over_tcp")] = "rtu_over_tcp",
    baudrate: Annotated[int, typer.Option(help="The bus's baud rate (for the record; the gateway sets it)")] = 2400,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for an answer")] = 2.0,
    wait: Annotated[float, typer.Option(help="A dial-in gateway: seconds to wait for its DTU to dial in")] = 120.0,
    inventory_file: Annotated[Path | None, typer.Option("--inventory", help="Default: setting inventory")] = None,
) -> None:
    """Read one device once and print its values: ``houqin probe d3-101-meter``, or a gateway given by
    ``--host`` with ``--model`` and ``--unit`` (Modbus) or ``--address`` (DL/T 645; without it the meter
    alone on the bus is asked for its address)."""
    settings = Settings()
    # What went wrong is said once, below, in plain words: not also by the poller's log.
    logging.getLogger("collectors").setLevel(logging.CRITICAL)
    inventory = inventory_or_exit(inventory_file or settings.inventory)
    if device is not None:
        if device not in inventory.devices:
            raise fail(f"no device {device!r} in {inventory.source}")
        target = inventory.devices[device]
        if target.gateway is None:
            raise fail(f"{device} reports over MQTT: watch its topic instead (houqin mqtt …)")
        gateway = inventory.gateways[target.gateway]
    else:
        if host is None or model is None:
            raise fail("give a device of the inventory, or --host and --model")
        if model not in inventory.models:
            raise fail(f"no model {model!r}; one of {', '.join(sorted(inventory.models))}")
        protocol = inventory.models[model].protocol
        meters = {"dlt645": 12, "cjt188": 14}  # address digits
        kind = "rtu_over_tcp" if protocol in meters else framing
        try:
            gateway = Gateway.model_validate({"id": "probe", "type": kind, "host": host, "port": port,
                                              "timeout": timeout, "retries": 0, "baudrate": baudrate})  # fmt: skip
            meter = address or ("0" * meters[protocol] if protocol in meters else None)  # asked of the bus if not given
            modbus_unit = unit if protocol == "modbus" else None
            target = Device.model_validate({"id": "probe", "model": model, "gateway": "probe", "building": "-",
                                            "unit": modbus_unit, "address": meter})  # fmt: skip
        except ValueError as exc:
            raise fail(str(exc)) from None
    asyncio.run(_probe(inventory, gateway, target, ask_address=device is None and address is None, wait=wait))


async def _probe(inventory: Inventory, gateway: Gateway, device: Device, ask_address: bool, wait: float) -> None:
    model = inventory.model_of(device)
    line = DialInLine(gateway) if gateway.type == "dial_in" else None
    listener = DialInListener([line]) if line is not None else None
    link: ModbusLink | Dlt645Link | Cjt188Link
    if model.protocol == "dlt645":
        link = Dlt645Link(gateway, line=line)
    elif model.protocol == "cjt188":
        link = Cjt188Link(gateway, line=line)
    else:
        link = ModbusLink(gateway, line=line)
    try:
        if listener is not None and line is not None:
            await _dialled_in(listener, line, wait)
        if isinstance(link, Dlt645Link | Cjt188Link) and ask_address:
            try:
                found = await (link.read_address() if isinstance(link, Dlt645Link) else _meter_address(link, model))
            except LinkError as exc:
                raise fail(f"no meter answered read-address on {gateway.host}:{gateway.port}: {exc} "
                           "(several meters on the bus answer over each other: give --address)") from None  # fmt: skip
            typer.echo(f"address: {found}")
            device = device.model_copy(update={"address": found})
        readings: list[Reading] = []

        async def keep(reading: Reading) -> None:
            readings.append(reading)

        poller = ModbusBusPoller(link, [device], inventory, keep)
        reading = await poller.poll_once(device)
        if reading is None:
            raise fail(f"{device.id}: {poller.health[device.id].last_error or 'no answer'}")
        units = model.measured_fields()
        for name, value in reading.fields.items():
            unit = units.get(name, ("", ""))[1]
            typer.echo(f"{name:<16} {value}{' ' + unit if unit else ''}")
    finally:
        await link.close()
        if listener is not None:
            await listener.close()


async def _meter_address(link: Cjt188Link, model: DeviceModel) -> str:
    assert model.cjt188 is not None
    return await link.read_address(model.cjt188.type, model.cjt188.read_di_bytes)


async def _dialled_in(listener: DialInListener, line: DialInLine, wait: float) -> None:
    """Listen on the gateway's port until its DTU dials in (``houqin run`` must not hold the port meanwhile)."""
    try:
        await listener.start()
    except ListenError as exc:
        raise fail(f"{exc} (stop houqin run, or probe while it does not listen)") from None
    typer.echo(f"waiting up to {wait:g} s for DTU {line.gateway.registration!r} to dial in on port {line.gateway.port}")
    arrived = asyncio.Event()
    line.on_connect(arrived.set)
    try:
        await asyncio.wait_for(arrived.wait(), wait)
    except TimeoutError:
        raise fail(f"{line.gateway.id}: no DTU dialled in with registration {line.gateway.registration!r} within "
                   f"{wait:g} s ({listener.refused} other connections refused)") from None  # fmt: skip
    typer.echo(f"DTU dialled in from {line.peer}")
