"""A serial port of this machine as asyncio streams: pyserial configures the line (baud, parity, data and
stop bits) once, and the event loop reads and writes its file descriptor like a pipe, so a link written
for a TCP gateway talks to a local RS-485 adapter unchanged. (pymodbus's serial transport sets the line
up twice, which a pseudo-terminal refuses at even parity: the tests' serial cables are ptys.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

import serial


@dataclass
class SerialStreams:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    port: serial.SerialBase
    read_transport: asyncio.BaseTransport

    def close(self) -> None:
        self.writer.close()
        self.read_transport.close()
        with contextlib.suppress(OSError):
            self.port.close()


async def open_serial(device: str, baudrate: int, bytesize: int, parity: str, stopbits: int) -> SerialStreams:
    """Raises ``OSError`` (``serial.SerialException``) or ``ValueError`` when the port cannot be opened."""
    port = serial.serial_for_url(device, baudrate=baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits,
                                 timeout=0, exclusive=True)  # fmt: skip
    loop = asyncio.get_running_loop()
    try:
        fd = port.fileno()
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        read_transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(os.dup(fd), "rb", buffering=0))
        write_transport, write_protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(os.dup(fd), "wb", buffering=0)
        )
    except BaseException:
        port.close()
        raise
    writer = asyncio.StreamWriter(write_transport, write_protocol, reader, loop)
    return SerialStreams(reader, writer, port, read_transport)
