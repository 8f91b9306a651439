"""A whole simulated campus from an inventory: every Modbus gateway and DL/T 645 bus served on 127.0.0.1
with devices that behave (dorm loads, relays that cut rooms, lighting circuits), and faults injected at
run time."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from collectors.dial_in.line import DialInLine
from collectors.simulators.cjt188 import SimulatedCjt188Bus, SimulatedCjt188Meter
from collectors.simulators.dlt645 import SimulatedDlt645Bus, SimulatedDlt645Meter
from collectors.simulators.dtu import SimulatedDtu
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from collectors.simulators.mqtt_devices import SimulatedMqttDevices
from collectors.simulators.physics import LightingPhysics, MeterPhysics, dorm_load, starting_counter, water_flow
from collectors.simulators.serial_cable import SerialCable
from houqin.inventory import Inventory
from houqin.inventory.model import Device, Gateway, Room
from houqin.simulation import FAULTS, UnknownDevice

log = logging.getLogger(__name__)


# A simulated device the campus's physics drives: its values by field name, and a hook that brings them
# up to now before a read is answered.
SimulatedDevice = SimulatedModbusDevice | SimulatedDlt645Meter | SimulatedCjt188Meter
MeterBus = SimulatedDlt645Bus | SimulatedCjt188Bus


class SimulatedCampus:
    def __init__(
        self, inventory: Inventory, timezone: ZoneInfo, seed: int | None = None, meter_password: str | None = None
    ) -> None:
        self.inventory = inventory
        self.timezone = timezone
        self.devices: dict[str, SimulatedDevice] = {}
        self.faults: dict[str, set[str]] = {device_id: set() for device_id in inventory.devices}
        self.gateways: dict[str, SimulatedGateway] = {}
        self.dlt645_buses: dict[str, SimulatedDlt645Bus] = {}
        self.cjt188_buses: dict[str, SimulatedCjt188Bus] = {}
        self._mqtt: SimulatedMqttDevices | None = None
        self.dtus: dict[str, SimulatedDtu] = {}  # the DTUs of dial-in gateways, once houqin listens
        # Each room meter and its switch (device, the field saying it is closed): the room's relay, or for a
        # circuit with a meter of its own, the circuit's relay channel.
        room_of_meter: dict[str, tuple[Room, str | None, str]] = {}
        for room in inventory.rooms.values():
            room_of_meter[room.meter] = (room, room.relay, "relay_closed")
            for circuit in room.circuits:
                relay = circuit.relay_device
                command = (
                    inventory.models[inventory.devices[relay].model].commands.get(circuit.relay_command)
                    if relay
                    else None
                )
                field = command.state_field if command is not None and command.state_field else "relay_closed"
                room_of_meter[circuit.meter or room.meter] = (room, relay, field)
        rooms_per_building: dict[str, int] = {}
        for room in inventory.rooms.values():
            rooms_per_building[room.building] = rooms_per_building.get(room.building, 0) + 1
        load = dorm_load(timezone)
        self.cables: dict[str, SerialCable] = {}
        for gateway in inventory.gateways.values():
            on_bus = inventory.devices_on(gateway.id)
            if any(inventory.model_of(device).protocol == "dlt645" for device in on_bus):
                # The simulated meters obey the password houqin is configured with (none set: none obeys).
                password = meter_password or "not-set"
                meters = [SimulatedDlt645Meter(device.address or "", inventory.model_of(device), password)
                          for device in on_bus]  # fmt: skip
                self.devices.update({device.id: meter for device, meter in zip(on_bus, meters, strict=True)})
                self.dlt645_buses[gateway.id] = SimulatedDlt645Bus(meters, baud=gateway.baudrate)
                continue
            if any(inventory.model_of(device).protocol == "cjt188" for device in on_bus):
                water = [SimulatedCjt188Meter(device.address or "", inventory.model_of(device)) for device in on_bus]
                self.devices.update({device.id: meter for device, meter in zip(on_bus, water, strict=True)})
                self.cjt188_buses[gateway.id] = SimulatedCjt188Bus(water, baud=gateway.baudrate)
                continue
            if gateway.type == "rtu_serial":
                if not SerialCable.available():
                    log.warning("serial bus %s is not simulated: install socat (Debian package socat) to "
                                "join a simulated bus to houqin over a pseudo-terminal pair", gateway.id)  # fmt: skip
                    continue
                self.cables[gateway.id] = SerialCable(gateway.id)
            simulated = []
            for device in inventory.devices_on(gateway.id):
                modbus = SimulatedModbusDevice(device.unit or 1, inventory.model_of(device))
                self.devices[device.id] = modbus
                simulated.append(modbus)
            self.gateways[gateway.id] = SimulatedGateway(
                simulated, rtu=gateway.type != "modbus_tcp", baudrate=gateway.baudrate
            )
        for device_id, sim in self.devices.items():
            self._attach_physics(inventory.devices[device_id], sim, room_of_meter, rooms_per_building, load)

    def _attach_physics(
        self,
        device: Device,
        sim: SimulatedDevice,
        room_of_meter: dict[str, tuple[Room, str | None, str]],
        rooms_per_building: dict[str, int],
        load: Callable[[float], float],
    ) -> None:
        fields = set(sim.model.measured_fields())
        faults = self.faults[device.id]
        for name, command in sim.model.commands.items():
            if name == "relay" or (command.state_field or "").startswith("relay"):
                sim.values[command.state_field or "relay_closed"] = True  # rooms start powered
        if "relay_closed" in fields:
            sim.values["relay_closed"] = True
        if "energy" in fields:
            room, relay_id, closed = room_of_meter.get(device.id, (None, None, "relay_closed"))
            relay = self.devices.get(relay_id) if relay_id else None
            switch = relay or sim
            count = rooms_per_building.get(device.building, 0)

            def powered(switch: SimulatedDevice = switch, closed: str = closed) -> bool:
                return bool(switch.values.get(closed, True))

            def building_demand(now: float, count: int = count) -> float:
                # A building main meter carries the building's rooms and its common areas.
                return 1500.0 + count * float(load(now))

            demand = load if room is not None else building_demand
            start_kwh = starting_counter(device.id, "electricity", room is not None)
            physics = MeterPhysics(demand, phases=3 if "power_l1" in fields else 1, energy_kwh=start_kwh,
                                   powered=powered, faults=faults)  # fmt: skip

            def refresh_meter(target: SimulatedDevice, physics: MeterPhysics = physics) -> None:
                sample = physics.sample()
                target.values.update({key: value for key, value in sample.items() if key in target.values})

            sim.refresh = refresh_meter
        elif isinstance(sim, SimulatedCjt188Meter):
            zone = self.timezone

            def refresh_water(target: SimulatedCjt188Meter, faults: set[str] = faults) -> None:
                target.values["flow"] = water_flow(datetime.now(zone).hour, faults)

            sim.values["total"] = starting_counter(device.id, "water", False, "cjt188")
            sim.refresh = refresh_water
        elif any(name.endswith("_current") for name in fields):
            lighting = LightingPhysics(faults=faults)

            def refresh_lights(target: SimulatedModbusDevice, lighting: LightingPhysics = lighting) -> None:
                for name in list(target.values):
                    if name.endswith("_current"):
                        on = bool(target.values.get(name.replace("_current", "_on"), False))
                        target.values[name] = lighting.current(on)

            sim.refresh = refresh_lights

    def inject(self, device_id: str, fault: str, active: bool = True) -> None:
        """Start (or end) a fault on a device: ``offline``, ``voltage_sag``, ``stuck_value``, ..."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        if device_id not in self.faults:
            raise UnknownDevice(f"no simulated device {device_id!r}")
        faults = self.faults[device_id]
        if active:
            faults.add(fault)
        else:
            faults.discard(fault)
        if device_id in self.devices:
            self.devices[device_id].offline = "offline" in faults

    def active_faults(self) -> dict[str, list[str]]:
        return {device: sorted(faults) for device, faults in self.faults.items() if faults}

    def device_state(self, device_id: str) -> dict[str, Any]:
        """What a simulated device holds now (its register values, or an MQTT device's state), as the device
        itself would report it, whatever houqin believes."""
        if device_id in self.devices:
            return dict(self.devices[device_id].values)
        if self._mqtt is not None and device_id in self._mqtt.state:
            return copy.deepcopy(self._mqtt.state[device_id])
        raise UnknownDevice(f"no simulated device {device_id!r}")

    def mqtt_devices(self, url: str) -> SimulatedMqttDevices:
        """The campus's MQTT devices, publishing to the broker at ``url``, sharing this campus's faults."""
        self._mqtt = SimulatedMqttDevices(self.inventory, url, self.timezone, self.faults)
        return self._mqtt

    def gateway_for_link(self, gateway: Gateway) -> Gateway:
        """The gateway as houqin's links must reach it: on the simulator's own address (a serial bus: on
        houqin's end of its simulated cable). Valid once the campus is started."""
        if gateway.type == "dial_in":  # houqin listens where the inventory says; the simulated DTU dials it
            return gateway
        if gateway.id in self.meter_buses:  # served over TCP, whether the real bus is a serial port or a server
            port = self.meter_buses[gateway.id].port
            return gateway.model_copy(update={"type": "rtu_over_tcp", "host": "127.0.0.1", "port": port})
        if gateway.id in self.cables:
            return gateway.model_copy(update={"device": self.cables[gateway.id].houqin_end})
        simulated = self.gateways[gateway.id]
        return gateway.model_copy(update={"host": "127.0.0.1", "port": simulated.port})

    async def dial_in(self, lines: dict[str, DialInLine | None]) -> None:
        """Start a simulated DTU for every dial-in gateway: it dials houqin's listener and bridges the
        gateway's simulated bus."""
        for gateway_id, line in lines.items():
            if line is None or gateway_id not in self.simulated_gateways:
                continue
            gateway = line.gateway
            buses = self.meter_buses
            bus_port = buses[gateway_id].port if gateway_id in buses else self.gateways[gateway_id].port
            beat_every = (gateway.idle_timeout or 180.0) / 3
            dtu = SimulatedDtu(gateway.registration_bytes, ("127.0.0.1", gateway.port), ("127.0.0.1", bus_port),
                               gateway.heartbeat_bytes, beat_every)  # fmt: skip
            self.dtus[gateway_id] = dtu
            await dtu.start()
            log.info("simulated DTU of %s dials 127.0.0.1:%d, bridging its bus on 127.0.0.1:%d",
                     gateway_id, gateway.port, bus_port)  # fmt: skip

    def simulated(self, device: Device) -> SimulatedDevice:
        return self.devices[device.id]

    @property
    def meter_buses(self) -> dict[str, MeterBus]:
        """The DL/T 645 and CJ/T 188 buses, by gateway."""
        return {**self.dlt645_buses, **self.cjt188_buses}

    @property
    def simulated_gateways(self) -> set[str]:
        return set(self.gateways) | set(self.meter_buses)

    async def start(self) -> None:
        for gateway_id, gateway in self.gateways.items():
            if gateway_id in self.cables:
                cable = self.cables[gateway_id]
                await cable.start()
                gateway.serial_port = cable.device_end
            await gateway.start()
            # Where an installer points mbpoll at the simulated gateway: not the inventory's port, a free one
            # picked at start.
            units = ",".join(str(unit) for unit in sorted(gateway.devices))
            if gateway_id in self.cables:
                cable = self.cables[gateway_id]
                log.info("simulated gateway %s: serial bus, device end %s (houqin reads %s), units %s",
                         gateway_id, cable.device_end, cable.houqin_end, units)  # fmt: skip
            else:
                framing = "RTU over TCP" if gateway.rtu else "Modbus TCP"
                log.info("simulated gateway %s: %s on 127.0.0.1:%d, units %s", gateway_id, framing, gateway.port, units)
        for bus_id, bus in self.meter_buses.items():
            await bus.start()
            addresses = ",".join(sorted(bus.meters))
            standard = "DL/T 645" if bus_id in self.dlt645_buses else "CJ/T 188"
            log.info("simulated gateway %s: %s serial server on 127.0.0.1:%d at %d baud, meters %s",
                     bus_id, standard, bus.port, bus.baud, addresses)  # fmt: skip
        log.info("simulating %d devices behind %d Modbus gateways (%d on serial buses), %d DL/T 645 and %d CJ/T 188 "
                 "buses", len(self.devices), len(self.gateways), len(self.cables), len(self.dlt645_buses),
                 len(self.cjt188_buses))  # fmt: skip

    async def stop(self) -> None:
        for dtu in self.dtus.values():
            await dtu.stop()
        for gateway in self.gateways.values():
            await gateway.stop()
        for bus in self.meter_buses.values():
            await bus.stop()
        for cable in self.cables.values():
            await cable.stop()
