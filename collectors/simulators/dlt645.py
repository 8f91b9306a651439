"""Simulated DL/T 645-2007 meters on one RS-485 bus, behind a serial server on a real socket.

A meter answers reads of the data identifiers its model lists (values its owner sets), read-address when
it is alone on the bus, broadcast time, and relay control (0x1C) when the password and its level are
right: a trip opens its relay (status word 3, bit 4), a close closes it; a wrong password gets the
abnormal reply with the password bit, an expired command "other error". At ``baud`` the serial server
holds each request and reply for its time on the wire (11 bits a byte, 8E1), one frame at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from collectors.dlt645.frame import (
    ABNORMAL,
    BROADCAST,
    FOLLOWS,
    REPLY,
    WILDCARD,
    FrameReader,
    MeterError,
    address_bytes,
)
from collectors.dlt645.frame import Frame as WireFrame
from collectors.dlt645.requests import READ as READS
from collectors.dlt645.requests import READ_ADDRESS, READ_FOLLOW_ON, RELAY, TIME_SYNC
from collectors.registers import Value
from collectors.simulators.meter_bus import SimulatedMeterBus
from houqin.dlt645_items import ITEMS_2007, RELAY_OPEN_BIT, STATUS_WORD_3, RelayAction, Version
from houqin.inventory.model import DeviceModel

log = logging.getLogger(__name__)

READ = READS[Version.V2007]


class SimulatedDlt645Meter:
    def __init__(self, address: str, model: DeviceModel, password: str, level: int = 2) -> None:
        assert model.dlt645 is not None and model.dlt645.version == "2007"
        self.address = address
        self.model = model
        self.items = {di: ITEMS_2007[di] for di in model.dlt645.item_ids()}
        # What the meter holds, by houqin's field names (the relay's state as relay_closed, like a relay's).
        self.values: dict[str, Value] = {item.field: 0.0 for item in self.items.values() if not item.bits}
        self.values["relay_closed"] = True
        # Called before a read is answered, to bring the values up to now (see physics.py).
        self.refresh: Callable[[SimulatedDlt645Meter], None] | None = None
        self.password = password
        self.level = level
        self.offline = False
        self.clock: datetime | None = None  # set by a broadcast time
        self.relay_commands: list[RelayAction] = []
        # Replies with more value bytes than this are split into follow-on frames (0x12), as a meter does
        # with a reply longer than its frame buffer.
        self.split_after: int | None = None
        self._rest: list[bytes] = []

    def answer(self, request: WireFrame, now: datetime) -> WireFrame | None:
        if request.control == TIME_SYNC:
            digits = [int(f"{byte:02x}") for byte in request.data]
            self.clock = datetime(2000 + digits[5], digits[4], digits[3], digits[2], digits[1], digits[0])
            return None
        if request.control == READ_ADDRESS:
            return WireFrame(self.address, READ_ADDRESS | REPLY, address_bytes(self.address))
        if request.control == READ:
            if self.refresh is not None:
                self.refresh(self)
            di = int.from_bytes(request.data[:4], "little")
            item = self.items.get(di)
            if item is None:
                return self._refuse(request, MeterError.NO_DATA)
            if di == STATUS_WORD_3:
                value = item.encode(0 if self.relay_closed else RELAY_OPEN_BIT)
            else:
                value = item.encode(float(self.values[item.field]))
            if self.split_after is not None and len(value) > self.split_after:
                step = self.split_after
                self._rest = [value[at : at + step] for at in range(step, len(value), step)]
                return WireFrame(self.address, READ | REPLY | FOLLOWS, request.data[:4] + value[:step])
            return WireFrame(self.address, READ | REPLY, request.data[:4] + value)
        if request.control == READ_FOLLOW_ON:
            if not self._rest or len(request.data) != 5:
                return self._refuse(request, MeterError.NO_DATA)
            part = self._rest.pop(0)
            control = READ_FOLLOW_ON | REPLY | (FOLLOWS if self._rest else 0)
            return WireFrame(self.address, control, request.data[:4] + part + request.data[4:5])
        if request.control == RELAY:
            return self._relay(request, now)
        return self._refuse(request, MeterError.OTHER)

    def _relay(self, request: WireFrame, now: datetime) -> WireFrame:
        data = request.data
        if len(data) != 16:
            return self._refuse(request, MeterError.OTHER)
        level, password = int(f"{data[0]:02x}"), data[1:4][::-1].hex()
        if level != self.level or password != self.password:
            return self._refuse(request, MeterError.PASSWORD)
        digits = [int(f"{byte:02x}") for byte in data[10:16]]
        expires = datetime(2000 + digits[5], digits[4], digits[3], digits[2], digits[1], digits[0])
        if expires < now:
            return self._refuse(request, MeterError.OTHER)
        action = RelayAction(data[8])
        self.relay_commands.append(action)
        if action.closes is not None:
            self.relay_closed = action.closes
        return WireFrame(self.address, RELAY | REPLY)

    @property
    def relay_closed(self) -> bool:
        return bool(self.values["relay_closed"])

    @relay_closed.setter
    def relay_closed(self, closed: bool) -> None:
        self.values["relay_closed"] = closed

    def _refuse(self, request: WireFrame, error: MeterError) -> WireFrame:
        return WireFrame(self.address, request.control | REPLY | ABNORMAL, bytes([int(error)]))


class SimulatedDlt645Bus(SimulatedMeterBus[WireFrame, SimulatedDlt645Meter]):
    """A serial server with 645 meters behind it: a TCP server carrying their frames transparently."""

    wildcard = WILDCARD

    def _frames(self) -> FrameReader:
        return FrameReader()

    def _encode(self, frame: WireFrame) -> bytes:
        return frame.encode(wake=0)

    def _for_every_meter(self, request: WireFrame) -> bool:
        return request.address == BROADCAST

    def _answer(self, meter: SimulatedDlt645Meter, request: WireFrame) -> WireFrame | None:
        return meter.answer(request, datetime.now())  # the meters' clocks: the campus's local time
