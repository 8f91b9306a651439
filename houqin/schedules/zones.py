"""A zone's outputs (device commands) and the device action that carries out a zone-level action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from houqin.inventory import Inventory
from houqin.inventory.model import Command, Zone


@dataclass(frozen=True)
class Output:
    device: str
    command: str


def _is_output(kind: str, command: Command) -> bool:
    if kind == "lighting":
        return {"on", "off"} <= set(command.actions)
    return {"play", "stop"} <= set(command.actions)


def zone_outputs(inventory: Inventory, zone: Zone) -> list[Output]:
    """Every output the zone drives: the named command of a ``device:command`` member, else every command
    of the device that switches lights (has on and off) or plays programmes (has play and stop)."""
    outputs: list[Output] = []
    for device_id, command in zone.members():
        commands = inventory.model_of(inventory.devices[device_id]).commands
        if command is not None:
            outputs.append(Output(device_id, command))
        else:
            outputs += [Output(device_id, name) for name, spec in commands.items() if _is_output(zone.kind, spec)]
    return outputs


class ZoneActionError(ValueError):
    """A zone-level action one of the zone's outputs cannot carry out (dimming a switch-only circuit)."""


def device_action(
    inventory: Inventory,
    output: Output,
    action: str,
    level: int | None = None,
    programme: str | None = None,
    duration_s: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The device command action and arguments for a zone action on ``output``."""
    spec = inventory.model_of(inventory.devices[output.device]).commands[output.command]
    if action == "dim":
        if "dim" not in spec.actions:
            raise ZoneActionError(
                f"{output.device}:{output.command} cannot dim (it has {', '.join(sorted(spec.actions))})"
            )
        return "dim", {"level": level}
    if action == "play":
        return "play", {"programme": programme, "duration_s": duration_s}
    if action not in spec.actions:
        raise ZoneActionError(f"{output.device}:{output.command} has no action {action!r}")
    return action, {}


def check_zone_action(inventory: Inventory, zone: Zone, action: str) -> None:
    """Raise ``ZoneActionError`` naming every output of ``zone`` that cannot carry out ``action``."""
    problems = []
    for output in zone_outputs(inventory, zone):
        try:
            device_action(inventory, output, action, level=50, programme="p", duration_s=1)
        except ZoneActionError as exc:
            problems.append(str(exc))
    if problems:
        raise ZoneActionError(f"zone {zone.id!r}: " + "; ".join(problems))
