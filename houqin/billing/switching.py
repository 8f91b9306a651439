"""Which relays a change of a room's power switches. A room is off for a set of causes at once (money, the
curfew, a trip, a lock); each of its switches — the room's relay, or one per circuit — is cut for the causes
its circuit names. A cause that begins switches off what it cuts and nothing else held off already; a cause
that ends switches back on what it cut and no other cause still holds off. So a room at zero balance keeps
its lights, and the end of the curfew leaves the sockets of a room that has no money off."""

from __future__ import annotations

import logging
from datetime import datetime

from houqin.commands import CommandRequest
from houqin.inventory import Inventory
from houqin.inventory.circuits import CutCause, Switch
from houqin.store.tables import CommandSource, WalletState

log = logging.getLogger(__name__)


def active_causes(
    state: WalletState | None, locked: bool, curfew: bool, tripped_until: datetime | None, now: datetime
) -> frozenset[CutCause]:
    """The causes holding a room off, from its wallet's columns."""
    causes = set()
    if state == WalletState.CUT_OFF:
        causes.add(CutCause.BALANCE)
    if curfew:
        causes.add(CutCause.CURFEW)
    if tripped_until is not None and tripped_until > now:
        causes.add(CutCause.TRIP)
    if locked:
        causes.add(CutCause.LOCK)
    return frozenset(causes)


class RoomSwitches:
    def __init__(self, inventory: Inventory) -> None:
        self.switches: dict[str, list[Switch]] = {
            room.id: inventory.switches(room) for room in inventory.rooms.values()
        }

    def of(self, room: str) -> list[Switch]:
        return self.switches.get(room, [])

    def requests(
        self, room: str, cause: CutCause, action: str, others: frozenset[CutCause], why: str, key: str
    ) -> list[CommandRequest]:
        """The commands that carry out ``cause`` beginning (``off``) or ending (``on``) while ``others`` hold
        the room off; ``key`` names the change (one command per switch, keyed by it)."""
        switches = self.of(room)
        if not switches:
            log.error("room %s should be switched %s (%s) but has no relay houqin can command", room, action, why)
            return []
        requests = []
        for switch in switches:
            if cause not in switch.cut_on or switch.off_for(others):
                continue  # not cut for this cause, or held off (and so already off) by another
            suffix = "" if switch.circuit is None else f":{switch.circuit}"
            requests.append(CommandRequest(switch.device, switch.command, action, CommandSource.BILLING, reason=why,
                                           key=f"billing:{room}:{key}{suffix}"))  # fmt: skip
        return requests

    def powered(self, room: str, active: frozenset[CutCause]) -> dict[str, bool]:
        """Per circuit (``room`` for a room without circuits), whether it has power while ``active`` hold."""
        return {switch.circuit or "room": not switch.off_for(active) for switch in self.of(room)}
