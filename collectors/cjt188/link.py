"""CJ/T 188 over one RS-485 bus: the current data (901F) of a water, heat or gas meter, the address of a
lone meter, and the valve (write A017); the connection, turn-taking and timeouts are ``FramedLink``'s.
A reply answers a request when it comes from the meter asked, to the function asked, echoing the data
identifier asked (in either byte order: meters echo it as they please)."""

from __future__ import annotations

from collectors.cjt188.frame import WILDCARD, WILDCARD_TYPE, Frame, FrameReader
from collectors.framed_link import FramedLink
from collectors.link_errors import DeviceRefused, DeviceTimeout
from houqin.cjt188_meters import BadReadingError, MeterType, Status, StatusBits, ValveAction, decode_current
from houqin.inventory.devices import Cjt188Map

READ_DATA = 0x01
READ_ADDRESS = 0x03
WRITE_DATA = 0x04
ADDRESS_DI = bytes([0x81, 0x0A])
SEQUENCE = 0x00


class Cjt188Link(FramedLink[Frame]):
    """Reads and valve commands for the CJ/T 188 meters behind one gateway."""

    protocol = "CJ/T 188"

    default_wake = 2

    def _new_frames(self) -> FrameReader:
        return FrameReader()

    async def read_current(self, address: str, meter: Cjt188Map) -> dict[str, float | bool]:
        """The meter's current data (901F) in houqin's fields and units. A reply that is not a reading
        raises ``BadReadingError`` (garbage, for the poller to count)."""
        request = Frame(meter.type.code, address, READ_DATA, meter.read_di_bytes + bytes([SEQUENCE]))
        reply = self._normal(await self.exchange(request), address, "read 901F", StatusBits(meter.status_bits))
        return decode_current(meter.type, reply.data[3:], StatusBits(meter.status_bits))

    async def read_address(self, meter_type: MeterType | None = None, read_di: bytes = b"\x1f\x90") -> str:
        """The address of the one meter on the bus (the ``AA…`` wildcard), in the order ``read_di`` is sent."""
        di = ADDRESS_DI[::-1] if read_di[0] == 0x1F else ADDRESS_DI
        code = meter_type.code if meter_type is not None else WILDCARD_TYPE
        reply = await self.exchange(Frame(code, WILDCARD, READ_ADDRESS, di + bytes([SEQUENCE])))
        self._normal(reply, WILDCARD, "read address", StatusBits.LSB_FIRST)
        return reply.address

    async def valve(self, address: str, meter: Cjt188Map, action: ValveAction) -> Status:
        """Open or close the valve; the status word the meter answers with (the valve may take seconds to move)."""
        data = meter.valve_di_bytes + bytes([SEQUENCE, action.code])
        reply = await self.exchange(Frame(meter.type.code, address, WRITE_DATA, data))
        bits = StatusBits(meter.status_bits)
        self._normal(reply, address, f"valve {action}", bits)
        if len(reply.data) < 5:
            raise DeviceTimeout(f"meter {address} on {self.gateway.id}: a valve reply without its status word")
        return Status.decode(reply.data[3:5], bits)

    def _normal(self, reply: Frame, address: str, what: str, bits: StatusBits) -> Frame:
        if reply.abnormal:
            status = Status.decode(reply.data[1:3], bits) if len(reply.data) >= 3 else None
            said = "status unknown" if status is None else ", ".join(
                name.replace("_", " ") for name, on in status.fields().items() if on) or "status normal"  # fmt: skip
            raise DeviceRefused(f"meter {address} refused {what} ({said})", reply.control)
        return reply

    def _answers(self, frame: Frame, request: Frame) -> bool:
        if not frame.is_reply or frame.function != request.function:
            return False
        if request.address != WILDCARD and frame.address != request.address:
            return False
        if frame.abnormal:
            return True
        di = request.data[:2]
        return frame.data[:2] in {di, di[::-1]}


__all__ = ["BadReadingError", "Cjt188Link"]
