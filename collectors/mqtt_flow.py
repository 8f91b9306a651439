"""Flow control for what the MQTT link receives: memory bounded, nothing dropped.

aiomqtt's incoming queue is unbounded by default, and bounded it *discards* what does not fit — after paho
has acknowledged it, so a QoS 1 message would be lost. Instead, when ``high`` messages wait, the link stops
reading its socket: paho then neither reads nor acknowledges anything more, the broker's in-flight window
for houqin fills, and the broker keeps the rest (the persistent session's queue, ``max_queued_messages``).
Reading resumes once the backlog is down to ``low``. While paused, the connection's keep-alive answers are
not read either; a stall longer than the keep-alive ends the connection, which the link re-opens, and the
broker still holds every QoS 1 message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

log = logging.getLogger(__name__)

BACKLOG_HIGH = 2000
BACKLOG_LOW = 500


class FlowControlledClient(aiomqtt.Client):
    """An aiomqtt client that stops reading from the broker while too many received messages wait."""

    def __init__(self, *args: Any, high: int = BACKLOG_HIGH, low: int = BACKLOG_LOW, **kwargs: Any) -> None:
        if not 0 <= low < high:
            raise ValueError("the backlog bounds need 0 <= low < high")
        owner = self

        class Backlog(asyncio.Queue[aiomqtt.Message]):
            # asyncio.Queue's own hooks: every put and get passes through them.
            def _put(self, item: aiomqtt.Message) -> None:
                super()._put(item)
                if self.qsize() >= high:
                    owner._pause()

            def _get(self) -> aiomqtt.Message:
                item: aiomqtt.Message = super()._get()
                if self.qsize() <= low:
                    owner._resume()
                return item

        super().__init__(*args, queue_type=Backlog, **kwargs)
        self._fileno: int | None = None
        self.paused = False
        self.pauses = 0
        self.peak_backlog = 0  # the largest backlog seen at or beyond ``high`` (0: never reached)

    @property
    def backlog(self) -> int:
        """Messages received and not yet taken by the link."""
        return self._queue.qsize()

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)
        self._fileno = sock.fileno()

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._fileno = None
        self.paused = False
        super()._on_socket_close(client, userdata, sock)

    def _pause(self) -> None:
        self.peak_backlog = max(self.peak_backlog, self.backlog)
        if self.paused or self._fileno is None:
            return
        self._loop.remove_reader(self._fileno)
        self.paused = True
        self.pauses += 1
        log.debug("MQTT: %d messages wait; reading from the broker paused", self.backlog)

    def _resume(self) -> None:
        if not self.paused or self._fileno is None:
            return
        self.paused = False
        self._loop.add_reader(self._fileno, self._read)
        log.debug("MQTT: backlog down to %d; reading from the broker again", self.backlog)

    def _read(self) -> None:
        # What aiomqtt's own reader does: a failed read means the connection broke.
        try:
            while True:
                self._client.loop_read()
                sock = self._client.socket()
                pending = getattr(sock, "pending", None)
                if pending is None or pending() <= 0 or self.paused:
                    break
        except Exception as error:  # handed to aiomqtt, which ends the connection with it
            if not self._disconnected.done():
                self._disconnected.set_exception(error)
