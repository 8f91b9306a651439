"""The requests houqin sends a DL/T 645 meter and what it makes of the replies.

2007: read 0x11 (data: the 4-byte DI), read follow-on 0x12 (DI and a sequence number, when a reply said
more follows), read address 0x13 (to the ``AA…`` wildcard), broadcast time 0x08 (to ``99…``, no reply),
relay control 0x1C. 1997: read 0x01 with a 2-byte DI. A reply echoes the DI before the value; an abnormal
reply carries one error byte instead, raised as ``MeterRefused`` with its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from collectors.dlt645.frame import BROADCAST, WILDCARD, Frame, FrameError, MeterError, address_text
from houqin.dlt645_items import DI_SIZE, DataItem, RelayAction, Version

READ = {Version.V2007: 0x11, Version.V1997: 0x01}
READ_FOLLOW_ON = 0x12
READ_ADDRESS = 0x13
TIME_SYNC = 0x08
RELAY = 0x1C


class MeterRefused(Exception):  # noqa: N818 - reads as what happened
    """An abnormal reply: the meter understood and said no (``error`` says why)."""

    def __init__(self, address: str, what: str, error: MeterError) -> None:
        super().__init__(f"meter {address} refused {what}: {error.describe()}")
        self.error = error


@dataclass(frozen=True)
class RelayCredentials:
    """What a 0x1C command carries to be obeyed: the password's level and the password (6 digits), and
    the operator code (8 digits) the meter records. From settings: secrets, never in the inventory."""

    level: int
    password: str
    operator: str

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 0x99:
            raise ValueError(f"password level {self.level}: 0 to 99")
        if len(self.password) != 6 or not self.password.isdigit():
            raise ValueError("the meter password is 6 digits")
        if len(self.operator) != 8 or not self.operator.isdigit():
            raise ValueError("the operator code is 8 digits")

    def encode(self) -> bytes:
        return bytes([int(f"{self.level:02d}", 16)]) + _bcd(self.password) + _bcd(self.operator)


def _bcd(digits: str) -> bytes:
    """Decimal digits as BCD, the lowest two first."""
    return bytes.fromhex(digits)[::-1]


def _di(item: DataItem, version: Version) -> bytes:
    return item.di.to_bytes(DI_SIZE[version], "little")


def read_request(address: str, item: DataItem, version: Version = Version.V2007) -> Frame:
    return Frame(address, READ[version], _di(item, version))


def follow_on_request(address: str, item: DataItem, sequence: int) -> Frame:
    return Frame(address, READ_FOLLOW_ON, _di(item, Version.V2007) + bytes([sequence & 0xFF]))


def parse_read(reply: Frame, address: str, item: DataItem, version: Version = Version.V2007) -> float:
    """The value a reply to ``read_request`` carries, in houqin's unit."""
    _expect(reply, address, READ[version], f"DI {item.di:0{DI_SIZE[version] * 2}X}")
    di = _di(item, version)
    if reply.data[: len(di)] != di:
        raise FrameError(f"meter {address}: a reply for DI {reply.data[: len(di)][::-1].hex().upper()}, "
                         f"asked {item.di:0{len(di) * 2}X}")  # fmt: skip
    return item.decode(reply.data[len(di) : len(di) + item.size])


def read_address_request() -> Frame:
    return Frame(WILDCARD, READ_ADDRESS)


def parse_address(reply: Frame) -> str:
    if not reply.is_reply or reply.function != READ_ADDRESS or len(reply.data) != 6:
        raise FrameError(f"not a reply to read-address: control {reply.control:#04x}, {len(reply.data)} bytes")
    return address_text(reply.data)


def time_sync(at: datetime) -> Frame:
    """Broadcast the time (the meters' local time, ``ss mm hh DD MM YY``); meters do not answer."""
    fields = (at.second, at.minute, at.hour, at.day, at.month, at.year % 100)
    return Frame(BROADCAST, TIME_SYNC, bytes(int(f"{value:02d}", 16) for value in fields))


def relay_request(address: str, action: RelayAction, credentials: RelayCredentials, expires: datetime) -> Frame:
    """A relay control command, obeyed until ``expires`` (the meter's local time) if not yet carried out."""
    fields = (expires.second, expires.minute, expires.hour, expires.day, expires.month, expires.year % 100)
    data = credentials.encode() + bytes([action, 0x00]) + bytes(int(f"{value:02d}", 16) for value in fields)
    return Frame(address, RELAY, data)


def check_relay_reply(reply: Frame, address: str, action: RelayAction) -> None:
    """Raises ``MeterRefused`` (e.g. password wrong) or ``FrameError``; returns when the meter accepted."""
    _expect(reply, address, RELAY, f"relay command {action.name.lower()}")


def _expect(reply: Frame, address: str, function: int, what: str) -> None:
    if not reply.is_reply or reply.function != function:
        raise FrameError(f"meter {address}: control {reply.control:#04x} does not answer {what}")
    if reply.address != address:
        raise FrameError(f"a reply from meter {reply.address}, asked {address}")
    if reply.abnormal:
        raise MeterRefused(address, what, reply.error())
