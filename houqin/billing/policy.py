"""Cut-off and restore: a room whose balance reaches the cut-off level loses power, and gets it back as
soon as the balance is above the restore level again. The wallet's state and the relay command are
written in the same transaction as the ledger entry that caused them, so a crash can leave neither a
cut room with money nor a paid room in the dark; the command's key names that entry."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.store.tables import LedgerEntry, Wallet

log = logging.getLogger(__name__)


class PowerPolicy:
    def __init__(
        self, inventory: Inventory, commands: CommandQueue | None, cutoff_fen: int = 0, restore_fen: int = 0
    ) -> None:
        self.inventory = inventory
        self.commands = commands
        self.cutoff_fen = cutoff_fen
        self.restore_fen = max(restore_fen, cutoff_fen)

    async def after(self, session: AsyncSession, room_id: str, entry: LedgerEntry, now: datetime) -> None:
        """Apply the policy to the room after ``entry`` moved its balance (caller's transaction)."""
        state = (await session.execute(select(Wallet.state).where(Wallet.room == room_id))).scalar()
        balance = entry.balance_after_fen
        if state is None:
            return
        if state != "cut_off" and balance <= self.cutoff_fen:
            await self._set_state(session, room_id, "cut_off")
            await self._relay(session, room_id, "off", now, f"balance {balance} fen", f"cut:{entry.id}")
        elif state == "cut_off" and balance > self.restore_fen:
            await self._set_state(session, room_id, "normal")
            await self._relay(session, room_id, "on", now, f"balance {balance} fen", f"restore:{entry.id}")

    async def _set_state(self, session: AsyncSession, room_id: str, state: str) -> None:
        await session.execute(update(Wallet).where(Wallet.room == room_id).values(state=state))

    async def _relay(self, session: AsyncSession, room_id: str, action: str, now: datetime, why: str, key: str) -> None:
        room = self.inventory.rooms[room_id]
        relay = self.inventory.relay_of(room)
        if relay is None or self.commands is None:
            log.error("room %s should be switched %s (%s) but has no relay houqin can command", room_id, action, why)
            return
        await self.commands.enqueue_in(session, relay.id, "relay", action, now, source="billing", reason=why,
                                       key=f"billing:{room_id}:{key}")  # fmt: skip
        log.info("room %s: power %s (%s)", room_id, "cut" if action == "off" else "restored", why)
