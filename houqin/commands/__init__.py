"""The command queue (``queue``), the one shape of a command (``request``), and how written commands are
handed on (``handover``)."""

from houqin.commands.handover import DirectSender, Handover, Outgoing, Sendable, write_commands
from houqin.commands.queue import LATE, OPEN, CommandHook, CommandQueue
from houqin.commands.request import CommandError, CommandRequest

__all__ = [
    "LATE",
    "OPEN",
    "CommandError",
    "CommandHook",
    "CommandQueue",
    "CommandRequest",
    "DirectSender",
    "Handover",
    "Outgoing",
    "Sendable",
    "write_commands",
]
