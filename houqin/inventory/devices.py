"""Gateways, device models (register maps, payload maps, commands) and devices."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, model_validator

from houqin.cjt188_meters import MeterType, ValveAction, reading_fields
from houqin.dlt645_items import DI_SIZE, ITEMS, STATUS_WORD_3, RelayAction, Version
from houqin.inventory.energy import EnergyCode
from houqin.inventory.entries import (
    REGISTER_COUNT,
    TOPIC_FIELDS,
    TOPIC_PLACEHOLDER,
    Address,
    DataType,
    DeviceKind,
    Entry,
    Ident,
    Port,
    RegisterTable,
    Seconds,
    UnitId,
    WordOrder,
    _between,
)


class Gateway(Entry):
    """One bus connection: a Modbus TCP device, a serial server forwarding a bus's frames over TCP
    (``rtu_over_tcp``), a serial port of this machine (``rtu_serial``), or a DTU that dials in
    (``dial_in``: houqin listens on ``host:port`` and the DTU connects, names itself with its registration
    packet, and then forwards the bus's frames; DTUs sharing a port are told apart by that packet)."""

    id: Ident
    type: Literal["modbus_tcp", "rtu_over_tcp", "rtu_serial", "dial_in"]
    host: str | None = None  # dial_in: the address houqin listens on (default every interface)
    port: Port = 502
    device: str | None = None  # serial port, e.g. /dev/ttyUSB0
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout: Annotated[float, _between(0.05, 60)] = 1.0
    retries: Annotated[int, _between(0, 10)] = 2
    max_in_flight: Annotated[int, _between(1, 64)] = 1
    inter_request_delay: Annotated[float, _between(0, 10)] = 0.0
    # dial_in: the DTU's registration packet (its id, IMEI, ...) and heartbeat, as text or as hex bytes.
    registration: str | None = None
    registration_format: Literal["ascii", "hex"] = "ascii"
    heartbeat: str | None = None
    heartbeat_format: Literal["ascii", "hex"] = "hex"
    identify_timeout: Annotated[float, _between(1, 600)] = 30.0  # a connection that names no DTU is closed
    idle_timeout: Annotated[float, _between(1, 86400)] | None = None  # silent this long (no heartbeat): dead
    description: str = ""

    @model_validator(mode="after")
    def _transport_fields(self) -> Gateway:
        if self.type == "rtu_serial":
            if not self.device:
                raise ValueError("device: a serial gateway needs the serial port (e.g. /dev/ttyUSB0)")
            if self.host:
                raise ValueError("host: a serial gateway has no host; use type rtu_over_tcp for a TCP gateway")
        elif self.type == "dial_in":
            self._dial_in_fields()
        elif not self.host:
            raise ValueError(f"host: a {self.type} gateway needs a host")
        if self.type != "dial_in":
            for name in ("registration", "heartbeat", "idle_timeout"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only a dial_in gateway (a DTU that connects to houqin) has one")
        if self.max_in_flight > 1 and self.type != "modbus_tcp":
            raise ValueError(
                f"max_in_flight: an RS-485 bus answers one request at a time, got {self.max_in_flight}"
                f" for a {self.type} gateway"
            )
        return self

    def _dial_in_fields(self) -> None:
        if self.device:
            raise ValueError("device: a dial_in gateway is a DTU that connects over the network, not a serial port")
        if "port" not in self.model_fields_set:
            raise ValueError("port: a dial_in gateway needs the port houqin listens on for its DTU")
        if not self.registration:
            raise ValueError("registration: a dial_in gateway needs the registration packet its DTU sends")
        registration = self.registration_bytes  # raises on bad hex
        if len(registration) > MAX_REGISTRATION:
            raise ValueError(f"registration: at most {MAX_REGISTRATION} bytes, got {len(registration)}")
        if self.heartbeat is not None:
            heartbeat = self.heartbeat_bytes
            if not heartbeat:
                raise ValueError("heartbeat: empty; leave it out if the DTU sends none")
            if registration.startswith(heartbeat):
                raise ValueError("heartbeat: the registration packet starts with the heartbeat; they cannot be "
                                 "told apart")  # fmt: skip

    @property
    def registration_bytes(self) -> bytes:
        return _packet("registration", self.registration or "", self.registration_format)

    @property
    def heartbeat_bytes(self) -> bytes | None:
        if self.heartbeat is None:
            return None
        return _packet("heartbeat", self.heartbeat, self.heartbeat_format)

    @property
    def listen_host(self) -> str:
        return self.host or "0.0.0.0"  # noqa: S104 - a DTU dials in from the network: every interface by default


MAX_REGISTRATION = 64


def _packet(name: str, text: str, form: str) -> bytes:
    if form == "ascii":
        try:
            return text.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"{name}: {text!r} is not ASCII; give it as hex with {name}_format: hex") from None
    digits = text.replace(" ", "")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not hex bytes (e.g. 'FE' or '48 51 30 31')") from None


class RegisterField(Entry):
    """One measured value in a device's register map."""

    field: Ident
    table: RegisterTable = "holding"
    address: Address
    type: DataType = "uint16"
    order: WordOrder = "ABCD"
    length: Annotated[int, _between(1, 125)] | None = None  # registers, for strings only
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""

    @property
    def count(self) -> int:
        """Registers (or coils) this field occupies."""
        if self.table in {"coil", "discrete"}:
            return 1
        if self.type == "string":
            return self.length or 1
        return REGISTER_COUNT[self.type]

    @model_validator(mode="after")
    def _consistent(self) -> RegisterField:
        if self.table in {"coil", "discrete"} and self.type != "bool":
            raise ValueError(f"type: a {self.table} holds one bit, so its type is bool, got {self.type}")
        if self.type == "bool" and self.table not in {"coil", "discrete"}:
            raise ValueError("type: bool is for coil and discrete tables; use uint16 for a register")
        if self.type == "string" and self.length is None:
            raise ValueError("length: a string field needs its length in registers")
        if self.type != "string" and self.length is not None:
            raise ValueError("length: only string fields take a length")
        if self.address + self.count - 1 > 65535:
            raise ValueError(f"address: {self.address} + {self.count} registers runs past 65535")
        return self


class PayloadField(Entry):
    """Where a value sits in an MQTT payload: a dotted JSON path, or the whole payload for plain numbers."""

    path: str = Field(default="", description="dotted path into a JSON payload; empty for a plain payload")
    # A field keeps one type for ever: InfluxDB rejects a whole batch when a field's type changes.
    type: Literal["number", "bool", "string"] = "number"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""


class PayloadMap(Entry):
    format: Literal["json", "plain"] = "json"
    fields: dict[Ident, PayloadField] = Field(min_length=1)

    @model_validator(mode="after")
    def _plain_has_one_field(self) -> PayloadMap:
        if self.format == "plain" and len(self.fields) != 1:
            raise ValueError("fields: a plain payload carries one number, so it maps exactly one field")
        return self


COMMAND_ARGUMENTS = ("level", "programme", "duration_s")
COMMAND_ARGUMENT = re.compile(r"\{(\w+)\}")


class Command(Entry):
    """A named output of a device and the value or payload for each action.

    Modbus: ``table`` + ``address`` and ``actions`` of register or coil values (read back to confirm).
    MQTT: ``topic`` (relative to the device topic unless it starts with ``/``) and ``actions`` of payloads.
    """

    table: Literal["coil", "holding"] | None = None
    address: Address | None = None
    topic: str | None = None
    state_field: Ident | None = None
    # An action's value may carry the command's arguments: ``{level}`` (dim %), ``{programme}``,
    # ``{duration_s}``, and ``{correlation}`` (the command's id for the device to echo back). In an MQTT
    # payload each is replaced by its JSON encoding; a Modbus action that is exactly ``"{level}"`` writes
    # the level to its register.
    actions: dict[Ident, int | bool | str] = Field(min_length=1)
    # MQTT: the state_field value that confirms each action (a play command's payload names a programme,
    # the state that confirms it is playing: true). Without it, an action whose JSON payload carries the
    # state field confirms with that value, and any other with the device's next state message.
    states: dict[Ident, int | bool | str] = Field(default_factory=dict)
    # MQTT: the state field in which the device echoes the correlation id of the last command it applied.
    # When given, only a state message carrying this command's id confirms it.
    echo_field: Ident | None = None

    @model_validator(mode="after")
    def _states_of_actions(self) -> Command:
        unknown = sorted(set(self.states) - set(self.actions))
        if unknown:
            raise ValueError(f"states: {', '.join(unknown)} is not an action")
        for name, value in self.actions.items():
            if isinstance(value, str):
                unknown_args = sorted(set(COMMAND_ARGUMENT.findall(value)) - {*COMMAND_ARGUMENTS, "correlation"})
                if unknown_args:
                    known = ", ".join(f"{{{arg}}}" for arg in (*COMMAND_ARGUMENTS, "correlation"))
                    raise ValueError(f"actions.{name}: unknown argument {{{unknown_args[0]}}}; use {known}")
        return self

    def arguments_of(self, action: str) -> set[str]:
        """The arguments (``level``, ``programme``, ``duration_s``) that ``action`` needs."""
        value = self.actions[action]
        return set(COMMAND_ARGUMENT.findall(value)) & set(COMMAND_ARGUMENTS) if isinstance(value, str) else set()

    def render(self, action: str, arguments: Mapping[str, object], correlation: str = "") -> int | bool | str:
        """The value or payload that carries out ``action`` with its ``arguments``."""
        value = self.actions[action]
        if not isinstance(value, str):
            return value
        if self.protocol_is_modbus and value == "{level}":
            return int(str(arguments["level"]))

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "correlation":
                return json.dumps(correlation)
            if name in COMMAND_ARGUMENTS and name in arguments:
                return json.dumps(arguments[name], ensure_ascii=False)
            return match.group(0)

        return COMMAND_ARGUMENT.sub(substitute, value)

    @property
    def protocol_is_modbus(self) -> bool:
        return self.table is not None


class Dlt645Map(Entry):
    """What a DL/T 645 meter is read for: its protocol version and the data identifiers, by their hex
    code as the standard writes them (``00000000`` combined active energy, ``9010`` in 1997)."""

    version: Literal["2007", "1997"] = "2007"
    items: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_items(self) -> Dlt645Map:
        table = ITEMS[Version(self.version)]
        for text in self.items:
            di = _di_code(text, self.version)
            if di not in table:
                known = ", ".join(f"{code:0{DI_SIZE[Version(self.version)] * 2}X}" for code in table)
                raise ValueError(f"items: unknown DL/T 645-{self.version} data identifier {text!r}; one of {known}")
        if len(set(self.item_ids())) != len(self.items):
            raise ValueError("items: a data identifier is given more than once")
        return self

    def item_ids(self) -> list[int]:
        return [_di_code(text, self.version) for text in self.items]

    def fields(self) -> dict[str, tuple[Literal["number", "bool", "string"], str]]:
        table = ITEMS[Version(self.version)]
        out: dict[str, tuple[Literal["number", "bool", "string"], str]] = {}
        for di in self.item_ids():
            item = table[di]
            out[item.field] = ("bool", "") if item.bits else ("number", item.unit)
        return out


def _di_code(text: str, version: str) -> int:
    digits = DI_SIZE[Version(version)] * 2
    if len(text) != digits or any(c not in "0123456789ABCDEFabcdef" for c in text):
        raise ValueError(f"items: {text!r} is not a {digits}-hex-digit DL/T 645-{version} data identifier")
    return int(text, 16)


class Cjt188Map(Entry):
    """A CJ/T 188 meter: its type, and how it wants the two data identifiers houqin sends written on the
    wire (public documents disagree, meters too: ``1F 90`` or ``90 1F`` for the current data, ``A0 17``
    or ``17 A0`` for the valve), which way its status bits are numbered, and over how long a water meter's
    flow is worked out from its totalizer (a 0.01 m³ totalizer needs minutes to show a slow leak)."""

    meter_type: str
    read_di: str = "1F 90"
    valve_di: str = "A0 17"
    status_bits: Literal["lsb_first", "msb_first"] = "lsb_first"
    flow_window: Annotated[float, _between(5, 86400)] = 900.0  # seconds

    @model_validator(mode="after")
    def _known(self) -> Cjt188Map:
        known = ", ".join(member.value for member in MeterType)
        if self.meter_type not in {member.value for member in MeterType}:
            raise ValueError(f"meter_type: unsupported CJ/T 188 meter type {self.meter_type!r}; one of {known}")
        _di_bytes("read_di", self.read_di, 0x901F)
        _di_bytes("valve_di", self.valve_di, 0xA017)
        return self

    @property
    def type(self) -> MeterType:
        return MeterType(self.meter_type)

    @property
    def read_di_bytes(self) -> bytes:
        return bytes.fromhex(self.read_di)

    @property
    def valve_di_bytes(self) -> bytes:
        return bytes.fromhex(self.valve_di)


def _di_bytes(name: str, text: str, di: int) -> None:
    try:
        wire = bytes.fromhex(text)
    except ValueError:
        wire = b""
    expected = di.to_bytes(2, "big")
    if wire not in {expected, expected[::-1]}:
        raise ValueError(f"{name}: {text!r} is not DI {di:04X} in either byte order ('{expected.hex(' ').upper()}'"
                         f" or '{expected[::-1].hex(' ').upper()}')")  # fmt: skip


class DeviceModel(Entry):
    """A device profile: what a kind of device measures and how to command it."""

    name: Ident
    kind: DeviceKind
    protocol: Literal["modbus", "mqtt", "dlt645", "cjt188"]
    description: str = ""
    source: str = Field(default="", description="the vendor document and version the map was taken from")
    # MQTT devices of this model without a topic of their own publish on this template's topic.
    topic_template: str | None = Field(default=None, description="e.g. campus/{building}/water/{device}/state")
    registers: list[RegisterField] = Field(default_factory=list)
    # Unused registers a block read may span; 0 for devices that answer an exception to unmapped addresses.
    max_read_gap: Annotated[int, _between(0, 124)] = 16
    payload: PayloadMap | None = None
    dlt645: Dlt645Map | None = None
    cjt188: Cjt188Map | None = None
    commands: dict[Ident, Command] = Field(default_factory=dict)

    def measured_fields(self) -> dict[str, tuple[Literal["number", "bool", "string"], str]]:
        """Every field a device of this model reports, with its type and unit."""
        if self.dlt645 is not None:
            return self.dlt645.fields()
        if self.cjt188 is not None:
            return reading_fields(self.cjt188.type)
        if self.payload is not None:
            return {name: (field.type, field.unit) for name, field in self.payload.fields.items()}
        return {
            register.field: (
                "bool"
                if register.table in {"coil", "discrete"}
                else "string"
                if register.type == "string"
                else "number",
                register.unit,
            )
            for register in self.registers
        }

    def _cjt188_fields(self, meter: Cjt188Map) -> None:
        if self.registers or self.payload is not None or self.dlt645 is not None:
            raise ValueError("registers: a cjt188 model is read by its current data (901F), not registers or payloads")
        if self.kind != meter.type.kind:
            raise ValueError(f"kind: a {meter.meter_type} meter is a {meter.type.kind} device, not {self.kind}")
        valve_actions = {action.value for action in ValveAction}
        for name, command in self.commands.items():
            if command.table is not None or command.topic is not None:
                raise ValueError(f"commands.{name}: a CJ/T 188 command is a valve action, no table or topic")
            for action, value in command.actions.items():
                if value not in valve_actions:
                    raise ValueError(f"commands.{name}.actions.{action}: one of {', '.join(sorted(valve_actions))}")
            if command.state_field != "valve_closed":
                raise ValueError(f"commands.{name}: a valve is confirmed by the status read back: state_field "
                                 "valve_closed")  # fmt: skip

    @model_validator(mode="after")
    def _protocol_fields(self) -> DeviceModel:
        if (self.protocol == "cjt188") != (self.cjt188 is not None):
            raise ValueError("cjt188: a cjt188 model needs its cjt188 map (meter_type, ...), and only it has one")
        if self.cjt188 is not None:
            self._cjt188_fields(self.cjt188)
        if (self.protocol == "dlt645") != (self.dlt645 is not None):
            raise ValueError("dlt645: a dlt645 model needs its dlt645 map (version, items), and only it has one")
        if self.protocol == "dlt645":
            if self.registers or self.payload is not None:
                raise ValueError("registers: a dlt645 model is read by data identifiers, not registers or payloads")
            assert self.dlt645 is not None
            relay_actions = {action.name.lower() for action in RelayAction}
            for name, command in self.commands.items():
                if command.table is not None or command.topic is not None:
                    raise ValueError(f"commands.{name}: a DL/T 645 command is a relay action, no table or topic")
                for action, value in command.actions.items():
                    if value not in relay_actions:
                        raise ValueError(f"commands.{name}.actions.{action}: one of {', '.join(sorted(relay_actions))}")
                if STATUS_WORD_3 not in self.dlt645.item_ids() or command.state_field != "relay_closed":
                    raise ValueError(f"commands.{name}: confirming a relay needs items 04000503 (status word 3) "
                                     "and state_field relay_closed")  # fmt: skip
        elif self.protocol == "cjt188":
            pass  # checked in _cjt188_fields
        elif self.protocol == "modbus":
            if not self.registers:
                raise ValueError("registers: a modbus model needs at least one register")
            if self.payload is not None:
                raise ValueError("payload: a modbus model is read from registers, not a payload")
        else:
            if self.payload is None:
                raise ValueError("payload: an mqtt model needs a payload map")
            if self.registers:
                raise ValueError("registers: an mqtt model has no registers")
        if self.topic_template is not None:
            if self.protocol != "mqtt":
                raise ValueError("topic_template: only mqtt models have topics")
            unknown = sorted(set(TOPIC_PLACEHOLDER.findall(self.topic_template)) - set(TOPIC_FIELDS))
            if unknown:
                known = ", ".join(f"{{{name}}}" for name in TOPIC_FIELDS)
                raise ValueError(f"topic_template: unknown placeholder {{{unknown[0]}}}; use {known}")
        names = [register.field for register in self.registers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"registers: field {duplicates[0]!r} is given more than once")
        for name, command in self.commands.items():
            if self.protocol == "modbus" and (command.table is None or command.address is None):
                raise ValueError(f"commands.{name}: a modbus command needs table and address")
            if self.protocol == "mqtt" and command.topic is None:
                raise ValueError(f"commands.{name}: an mqtt command needs a topic")
        return self


class Device(Entry):
    id: Ident
    model: Ident
    gateway: Ident | None = None
    unit: UnitId | None = None
    # A meter's address, the digits printed on it: 12 for DL/T 645, 14 for CJ/T 188.
    address: Annotated[str, Field(pattern=r"^[0-9]{12}([0-9]{2})?$")] | None = None
    topic: str | None = None
    building: str = Field(min_length=1)
    floor: Annotated[int, _between(-10, 200)] | None = None
    room: str | None = None
    poll_interval: Seconds = 10.0
    enabled: bool = True
    tags: dict[Ident, str] = Field(default_factory=dict)
    description: str = ""
    # A meter's energy classification (分类分项, e.g. 01B00 air conditioning; default: its kind's category)
    # and the meter above it in the metering tree (a building's main meter above its sub-meters).
    energy_code: EnergyCode | None = None
    parent: Ident | None = None

    @model_validator(mode="after")
    def _address(self) -> Device:
        if self.gateway is not None and self.unit is None and self.address is None:
            raise ValueError("unit: a device on a gateway needs its Modbus unit id (1-247) or DL/T 645 address")
        if self.unit is not None and self.address is not None:
            raise ValueError("address: a device has a Modbus unit id or a DL/T 645 address, not both")
        if (self.unit is not None or self.address is not None) and self.gateway is None:
            raise ValueError("gateway: a unit id or meter address needs the gateway it is reached through")
        if self.gateway is not None and self.topic is not None:
            raise ValueError("topic: a Modbus device has no MQTT topic")
        if self.parent is not None and self.parent == self.id:
            raise ValueError("parent: a meter is not its own parent")
        return self


def command_topic(device: Device, command: Command) -> str:
    """A command topic is absolute when it starts with '/', else it replaces the last level of the
    device's state topic (``campus/library/lighting/l1/state`` + ``set`` -> ``.../l1/set``)."""
    assert command.topic is not None and device.topic is not None
    if command.topic.startswith("/"):
        return command.topic[1:]
    return device.topic.rsplit("/", 1)[0] + "/" + command.topic if "/" in device.topic else command.topic
