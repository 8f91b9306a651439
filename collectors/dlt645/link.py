"""DL/T 645 over one RS-485 bus: reads by data identifier, the address of a lone meter, relay commands and
the time broadcast; the connection, turn-taking and timeouts are ``FramedLink``'s. A reply answers a
request when it comes from the meter asked, to the function asked (a read's reply must also echo the DI
asked: a late reply to an earlier read of the same meter is not this one's).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from collectors.dlt645.frame import FOLLOWS, WILDCARD, Frame, FrameError, FrameReader
from collectors.dlt645.requests import (
    READ,
    MeterRefused,
    RelayCredentials,
    check_relay_reply,
    follow_on_request,
    parse_address,
    parse_read,
    read_address_request,
    read_request,
    relay_request,
    time_sync,
)
from collectors.framed_link import FramedLink
from collectors.link_errors import DeviceRefused, DeviceTimeout
from houqin.dlt645_items import BadValueError, DataItem, RelayAction, Version

T = TypeVar("T")
_READS = frozenset(READ.values())
MAX_FOLLOW_ONS = 16  # a reply houqin asks for fits one frame or a few: more is a meter gone astray


class Dlt645Link(FramedLink[Frame]):
    """Reads and commands for the DL/T 645 meters behind one gateway."""

    protocol = "DL/T 645"

    default_wake = 4

    def _new_frames(self) -> FrameReader:
        return FrameReader()

    # -- what the pollers and commands ask -----------------------------------------------------------

    async def read(self, address: str, item: DataItem, version: Version = Version.V2007) -> float:
        request = read_request(address, item, version)
        reply = await self.exchange(request)
        if reply.follows and not reply.abnormal and version is Version.V2007:
            reply = await self._follow_on(reply, item)
        return self._refusal_or(lambda: parse_read(reply, address, item, version), address)

    async def _follow_on(self, first: Frame, item: DataItem) -> Frame:
        """A reply split over several frames (the follows bit set): ask for the rest (0x12 with sequence
        numbers 1, 2, ...) and join the parts into the one reply they make."""
        data, reply, sequence = first.data, first, 0
        di = first.data[:4]
        while reply.follows:
            sequence += 1
            if sequence > MAX_FOLLOW_ONS:
                raise DeviceTimeout(f"meter {first.address} on {self.gateway.id}: more than {MAX_FOLLOW_ONS} "
                                    "follow-on frames")  # fmt: skip
            reply = await self.exchange(follow_on_request(first.address, item, sequence))
            if reply.abnormal:
                error = reply.error()
                raise DeviceRefused(f"meter {first.address} refused follow-on {sequence}: {error.describe()}",
                                    int(error))  # fmt: skip
            if reply.data[:4] != di or not reply.data or reply.data[-1] != sequence:
                raise DeviceTimeout(f"meter {first.address} on {self.gateway.id}: follow-on {sequence} does not "
                                    "continue the reply")  # fmt: skip
            data += reply.data[4:-1]
        return Frame(first.address, first.control & ~FOLLOWS, data)

    async def read_address(self) -> str:
        """The address of the one meter on the bus (``AA…`` wildcard): for probing a meter alone on a line."""
        reply = await self.exchange(read_address_request())
        return parse_address(reply)

    async def relay(self, address: str, action: RelayAction, credentials: RelayCredentials, expires: datetime) -> None:
        reply = await self.exchange(relay_request(address, action, credentials, expires))
        self._refusal_or(lambda: check_relay_reply(reply, address, action), address)

    async def broadcast_time(self, at: datetime) -> None:
        """Set every meter's clock to ``at`` (their local time); meters do not answer a broadcast."""
        await self.exchange(time_sync(at), expect_reply=False)

    def _answers(self, frame: Frame, request: Frame) -> bool:
        if not frame.is_reply or frame.function != request.function:
            return False
        if request.address != WILDCARD and frame.address != request.address:
            return False
        # A normal reply to a read echoes the DI: a late reply to an earlier read of the same meter is not this one.
        return frame.abnormal or frame.function not in _READS or frame.data.startswith(request.data)

    def _refusal_or(self, parse: Callable[[], T], address: str) -> T:
        try:
            return parse()
        except MeterRefused as exc:
            raise DeviceRefused(str(exc), int(exc.error)) from None
        except BadValueError:
            raise  # the meter answered, with a value that is not one: garbage for the poller to count
        except (FrameError, ValueError) as exc:
            raise DeviceTimeout(f"meter {address} on {self.gateway.id}: unusable reply: {exc}") from None
