"""What a request to a field device can end in, whatever the protocol: the pollers, the command dispatcher
and the health readings treat a Modbus and a DL/T 645 meter alike."""

from __future__ import annotations


class LinkError(Exception):
    """A request did not get an answer; the message says why."""


class LinkDown(LinkError):  # noqa: N818 - reads as a state: the link is down
    """The gateway or serial port cannot be reached (no request was sent)."""


class DeviceTimeout(LinkError):  # noqa: N818 - reads as what happened
    """The request was sent and no (valid) answer came within the timeout."""


class DeviceRefused(LinkError):  # noqa: N818 - reads as what happened
    """The device answered with a refusal (a Modbus exception code, a DL/T 645 error byte)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
