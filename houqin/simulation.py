"""Fault injection into a simulated campus: the interface the API and the CLI use, whoever simulates."""

from __future__ import annotations

from typing import Any, Protocol

FAULTS: tuple[str, ...] = (
    "offline",  # the device stops answering
    "voltage_sag",  # supply voltage drops to ~82 %
    "stuck_value",  # readings freeze while the device still answers
    "illegal_appliance",  # a 1,800 W resistive step in a dorm room (a kettle)
    "hair_dryer",  # a 1,200 W step at power factor 0.8 (allowed: not resistive)
    "lamp_failure",  # lighting circuit on, but no current
    "garbage_payload",  # the device sends data that cannot be decoded
    "leak",  # water keeps flowing at night
)


class UnknownDevice(KeyError):  # noqa: N818 - reads as what the caller asked for
    """No simulated device has this id."""


class FaultInjector(Protocol):
    def inject(self, device_id: str, fault: str, active: bool = True) -> None:
        """Start or end ``fault`` on a device; ``ValueError`` for an unknown fault, ``UnknownDevice``."""
        ...

    def active_faults(self) -> dict[str, list[str]]:
        """Device id -> faults now active, for devices with any."""
        ...

    def device_state(self, device_id: str) -> dict[str, Any]:
        """What a simulated device holds now, as the device itself reports it; ``UnknownDevice``."""
        ...
