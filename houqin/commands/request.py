"""What is asked of a device: the one shape in which every part of houqin queues a command."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from houqin.store.tables import CommandSource, CommandState


class CommandError(ValueError):
    """A command the device's model does not have (unknown device, command or action)."""


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """A command to queue: a device, one of its model's commands and an action (``relay`` / ``off``), who
    asks and why. ``key`` makes it idempotent (asked twice, queued once); ``deadline`` is the last instant it
    may be sent; ``correlation_id`` is echoed by an MQTT device in the state that confirms it (one is made
    up when not given)."""

    device: str
    command: str
    action: str
    source: CommandSource
    reason: str = ""
    requested_by: str = "houqin"
    key: str | None = None
    arguments: Mapping[str, Any] | None = None
    deadline: datetime | None = None
    zone: str | None = None
    correlation_id: str = ""

    @property
    def output(self) -> tuple[str, str]:
        """What it sets: a newer command for the same output supersedes an older one still queued."""
        return self.device, self.command

    def row(self, now: datetime) -> dict[str, Any]:
        """Its row in the queue, queued now (every row names the same columns: they go out in one INSERT)."""
        return {
            "device": self.device,
            "command": self.command,
            "action": self.action,
            "state": CommandState.QUEUED,
            "source": self.source,
            "reason": self.reason,
            "requested_by": self.requested_by[:64],
            "key": self.key,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "last_error": "",
            "arguments": dict(self.arguments) if self.arguments else None,
            "correlation_id": self.correlation_id or uuid.uuid4().hex,
            "deadline": self.deadline,
            "zone": self.zone,
            "sent_at": None,
        }
