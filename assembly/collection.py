"""The collecting part of a process: the pipeline, a link and poller per bus, the MQTT link, the command
dispatchers, and (simulating) the simulated campus and the embedded broker they need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from collectors.cjt188.commands import Cjt188CommandDispatcher
from collectors.cjt188.link import Cjt188Link
from collectors.command_dispatcher import CommandDispatcher, ModbusCommandDispatcher
from collectors.dial_in.line import DialInLine
from collectors.dial_in.listener import DialInListener
from collectors.dlt645.clock import Dlt645Clock
from collectors.dlt645.commands import Dlt645CommandDispatcher
from collectors.dlt645.link import Dlt645Link
from collectors.embedded_broker import EmbeddedBroker
from collectors.modbus_link import ModbusLink
from collectors.modbus_poller import ModbusBusPoller
from collectors.mqtt_command_dispatcher import MqttCommandDispatcher
from collectors.mqtt_link import MqttLink
from collectors.ownership import GatewayOwnership, Owned
from collectors.pipeline import Pipeline
from collectors.simulators.campus import SimulatedCampus
from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.readings import ReadingSink
from houqin.settings import Settings
from houqin.store import Database
from houqin.supervisor import Component, Service
from houqin.telemetry.self_report import SelfReport


@dataclass
class Collection:
    """What collects: its components, and the services started for them (stopped after the components)."""

    pipeline: Pipeline
    components: list[Component] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    simulator: SimulatedCampus | None = None


async def start_collection(
    settings: Settings,
    inventory: Inventory,
    sinks: Sequence[ReadingSink],
    commands: CommandQueue,
    simulate: bool = False,
    leases: tuple[Database, str] | None = None,
) -> Collection:
    """Build the collection and start the services it needs; on a failure the started ones are stopped.
    ``leases``: the database and this process's id, when collecting processes share the gateways."""
    pipeline = Pipeline()
    collection = Collection(pipeline)
    try:
        await _build(collection, settings, inventory, sinks, commands, simulate)
        if leases is not None:
            _share_gateways(collection, *leases)
    except BaseException:
        for service in reversed(collection.services):
            await service.stop()
        raise
    return collection


async def _build(
    collection: Collection,
    settings: Settings,
    inventory: Inventory,
    sinks: Sequence[ReadingSink],
    commands: CommandQueue,
    simulate: bool,
) -> None:
    pipeline = collection.pipeline
    for number, sink in enumerate(sinks):
        # Blocks when full: no reading is shed on its way to storage or the rules. The first sink is the
        # telemetry store; with ``telemetry.durable`` the sources wait until it has their readings on disk.
        pipeline.add_sink(sink, settle=settings.telemetry.durable and number == 0)
    settled = pipeline.settled if pipeline.settles else None
    components = collection.components
    components += [pipeline, SelfReport(pipeline.publish, settings.telemetry.self_report_seconds)]
    links: dict[str, ModbusLink] = {}  # one per bus, shared by its poller and the command dispatcher
    dlt645_links: dict[str, Dlt645Link] = {}
    cjt188_links: dict[str, Cjt188Link] = {}
    password = settings.dlt645.password.get_secret_value() if settings.dlt645.password else None
    campus = SimulatedCampus(inventory, settings.tz, meter_password=password) if simulate else None
    if campus is not None:
        await campus.start()  # links need the simulators' ports
        collection.services.append(campus)
        collection.simulator = campus
    lines: dict[str, DialInLine | None] = {}
    for gateway in inventory.gateways.values():
        if campus is not None:
            if gateway.id not in campus.simulated_gateways:
                continue
            gateway = campus.gateway_for_link(gateway)
        line = lines[gateway.id] = DialInLine(gateway) if gateway.type == "dial_in" else None
        devices = inventory.devices_on(gateway.id)
        protocols = {inventory.model_of(device).protocol for device in devices}  # a bus speaks one protocol
        if "dlt645" in protocols:
            dlt645 = dlt645_links[gateway.id] = Dlt645Link(gateway, line=line)
            components.append(ModbusBusPoller(dlt645, devices, inventory, pipeline.publish, settled=settled))
            continue
        if "cjt188" in protocols:
            cjt188 = cjt188_links[gateway.id] = Cjt188Link(gateway, line=line)
            components.append(ModbusBusPoller(cjt188, devices, inventory, pipeline.publish, settled=settled))
            continue
        link = links[gateway.id] = ModbusLink(gateway, line=line)
        components.append(ModbusBusPoller(link, devices, inventory, pipeline.publish, settled=settled))
    for listener in dial_in_listeners([line for line in lines.values() if line is not None]):
        await listener.start()  # a port in use stops the start here, naming it and its gateways
        collection.services.append(listener)  # closed at the end even if the components never ran
        components.append(listener)
    if campus is not None:
        await campus.dial_in(lines)
    if links:
        components.append(ModbusCommandDispatcher(commands, links, inventory))
    if cjt188_links:
        components.append(Cjt188CommandDispatcher(commands, cjt188_links, inventory))
    if dlt645_links:
        components.append(Dlt645CommandDispatcher(commands, dlt645_links, inventory, settings.dlt645, settings.tz))
        if settings.dlt645.time_sync_at is not None:
            components.append(Dlt645Clock(list(dlt645_links.values()), settings.dlt645.time_sync_at, settings.tz))
    if not inventory.mqtt_devices():
        return
    mqtt_url = settings.mqtt_url
    if settings.mqtt_embedded:
        broker = EmbeddedBroker(settings.embedded_mqtt_port)
        await broker.start()
        collection.services.append(broker)
        mqtt_url = broker.url
    mqtt_link = MqttLink(mqtt_url, inventory, pipeline.publish, client_id=settings.mqtt_client_id,
                         shared_group=settings.mqtt_shared_group, settled=settled)  # fmt: skip
    mqtt_commands = MqttCommandDispatcher(commands, mqtt_link, inventory)
    pipeline.add_sink(mqtt_commands)  # it confirms commands by the devices' state messages
    components += [mqtt_link, mqtt_commands]
    if campus is not None:
        simulated_url = mqtt_url if settings.mqtt_embedded else settings.simulator_mqtt_url or mqtt_url
        components.append(campus.mqtt_devices(simulated_url))


def _share_gateways(collection: Collection, database: Database, process_id: str) -> None:
    """Poll and command only the gateways this process holds the lease of (``collectors.ownership``)."""
    pollers = {component.link.name: component for component in collection.components
               if isinstance(component, ModbusBusPoller)}  # fmt: skip
    ownership = GatewayOwnership(database, process_id, sorted(pollers))
    for index, component in enumerate(collection.components):
        if isinstance(component, ModbusBusPoller):
            collection.components[index] = Owned(component, component.link.name, ownership)
            line = component.link.line
            if line is not None:  # a DTU that dials in here makes this process its gateway's owner
                line.on_connect(lambda gateway=component.link.name: ownership.claim(gateway))  # type: ignore[misc]
        elif isinstance(component, Dlt645Clock):
            component.owns = ownership.owns
        elif isinstance(component, CommandDispatcher) and not isinstance(component, MqttCommandDispatcher):
            component.follow(ownership, list(pollers))  # MQTT devices are shared through the broker instead
    collection.components.insert(0, ownership)


def dial_in_listeners(lines: list[DialInLine]) -> list[DialInListener]:
    """One listener per port: the DTUs dialling in on one port are told apart by their registration."""
    by_port: dict[int, list[DialInLine]] = {}
    for line in lines:
        by_port.setdefault(line.gateway.port, []).append(line)
    return [DialInListener(on_port) for on_port in by_port.values()]
