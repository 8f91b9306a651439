"""Simulated CJ/T 188 meters (water, gas; a valve each) on one RS-485 bus behind a serial server.

A meter answers its current data (901F, the DI in the byte order its model says, its values in m³),
read-address when alone on the bus, and the valve write (A017: 55 opens, 99 closes): the valve takes
``valve_seconds`` to move, so the answer to the write still shows the old state and a read a moment
later the new one. Its totalizer integrates the flow its owner sets (L/min); a closed valve stops it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from collectors.cjt188.frame import ABNORMAL, REPLY, WILDCARD, Frame, FrameReader
from collectors.cjt188.link import READ_ADDRESS, READ_DATA, WRITE_DATA
from collectors.registers import Value
from collectors.simulators.meter_bus import SimulatedMeterBus
from houqin.cjt188_meters import Status, StatusBits, ValveAction, to_bcd
from houqin.inventory.model import DeviceModel

M3 = 0x2C


class SimulatedCjt188Meter:
    def __init__(self, address: str, model: DeviceModel, valve_seconds: float = 0.3) -> None:
        assert model.cjt188 is not None and model.cjt188.type.kind != "heat"
        self.address = address
        self.model = model
        self.meter = model.cjt188
        self.bits = StatusBits(model.cjt188.status_bits)
        # What the meter holds, by houqin's field names; "flow" is what runs through it now (L/min).
        self.values: dict[str, Value] = {"total": 0.0, "settlement_total": 0.0, "flow": 0.0, "valve_closed": False,
                                         "valve_fault": False, "battery_low": False}  # fmt: skip
        self.refresh: Callable[[SimulatedCjt188Meter], None] | None = None
        self.offline = False
        self.valve_seconds = valve_seconds
        self.valve_commands: list[ValveAction] = []
        self._valve_moves_at: float | None = None
        self._valve_to = False
        self._integrated_at = time.monotonic()

    def _advance(self) -> None:
        now = time.monotonic()
        if self._valve_moves_at is not None and now >= self._valve_moves_at:
            self.values["valve_closed"] = self._valve_to
            self._valve_moves_at = None
        if not self.values["valve_closed"]:
            litres = float(self.values["flow"]) * (now - self._integrated_at) / 60.0
            self.values["total"] = float(self.values["total"]) + litres / 1000.0
        self._integrated_at = now

    def status(self) -> Status:
        return Status(bool(self.values["valve_closed"]), bool(self.values["valve_fault"]),
                      bool(self.values["battery_low"]))  # fmt: skip

    def answer(self, request: Frame) -> Frame | None:
        self._advance()
        di, sequence = request.data[:2], request.data[2:3]
        if request.function == READ_ADDRESS:
            return Frame(self.meter.type.code, self.address, READ_ADDRESS | REPLY, di + sequence)
        if request.function == READ_DATA and di == self.meter.read_di_bytes:
            if self.refresh is not None:
                self.refresh(self)
                self._advance()
            clock = bytes.fromhex(time.strftime("%S%M%H%d%m%y")) + b"\x20"  # ss mm hh DD MM YY, then 20 of 20YY
            data = (to_bcd(float(self.values["total"]), 4, 2) + bytes([M3])
                    + to_bcd(float(self.values["settlement_total"]), 4, 2) + bytes([M3])
                    + clock + self.status().encode(self.bits))  # fmt: skip
            return Frame(self.meter.type.code, self.address, READ_DATA | REPLY, di + sequence + data)
        if request.function == WRITE_DATA and di == self.meter.valve_di_bytes and len(request.data) == 4:
            action = {0x55: ValveAction.OPEN, 0x99: ValveAction.CLOSE}.get(request.data[3])
            if action is not None and not self.values["valve_fault"]:
                self.valve_commands.append(action)
                self._valve_to, self._valve_moves_at = action.closes, time.monotonic() + self.valve_seconds
                return Frame(self.meter.type.code, self.address, WRITE_DATA | REPLY,
                             di + sequence + self.status().encode(self.bits))  # fmt: skip
        return Frame(self.meter.type.code, self.address, request.control | REPLY | ABNORMAL,
                     sequence + self.status().encode(self.bits))  # fmt: skip


class SimulatedCjt188Bus(SimulatedMeterBus[Frame, SimulatedCjt188Meter]):
    """A serial server with CJ/T 188 meters behind it."""

    request_wake = 2
    wildcard = WILDCARD

    def _frames(self) -> FrameReader:
        return FrameReader()

    def _encode(self, frame: Frame) -> bytes:
        return frame.encode(wake=0)

    def _answer(self, meter: SimulatedCjt188Meter, request: Frame) -> Frame | None:
        if request.address != WILDCARD and request.meter_type != meter.meter.type.code:
            return None  # a meter answers requests for its own type only
        return meter.answer(request)
