"""Processes on one PostgreSQL: a process whose inventory or rule files differ from a live peer's is refused
at start naming the file, and so is one whose clock is off the database's by more than the margin; a peer
not heard of for a while no longer counts. The refusal is checked on a real ``houqin run``."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from assembly.peers import PeerConflictError, fingerprints, register
from houqin.store import Database
from houqin.store.tables import HouqinProcess
from rules.loader import rule_files
from tests.conftest import DEMO_INVENTORY
from tests.live_demo import HOUQIN


async def test_peers_must_agree_on_files_and_time(shared: tuple[Database, str], tmp_path: Path) -> None:
    database, url = shared
    files = {"inventory devices.yaml": "a1", "rule file shipped.yaml": "b2"}
    await register(database, files, ["api"], 2.0)
    await register(database, dict(files), ["collect"], 2.0)  # the same files: welcome
    with pytest.raises(PeerConflictError, match=r"inventory devices.yaml differs from the one process \d+ on .*"):
        await register(database, {**files, "inventory devices.yaml": "zz"}, ["collect"], 2.0)
    with pytest.raises(PeerConflictError, match=r"rule file shipped.yaml is run by process \d+ .*, not here"):
        await register(database, {"inventory devices.yaml": "a1"}, ["collect"], 2.0)
    with pytest.raises(PeerConflictError, match=r"clock is 5.\d s ahead of PostgreSQL's; .* within 2 s"):
        await register(database, files, ["collect"], 2.0, clock=lambda: datetime.now(UTC) + timedelta(seconds=5))
    async with database.session() as session:  # the peers went away a minute ago
        await session.execute(update(HouqinProcess).values(seen_at=datetime.now(UTC) - timedelta(minutes=1)))
        await session.commit()
    await register(database, {"inventory devices.yaml": "new"}, ["collect"], 2.0)
    async with database.session() as session:
        await session.execute(update(HouqinProcess).values(seen_at=datetime.now(UTC) - timedelta(minutes=1)))
        await session.commit()

    # A real process, its inventory one line apart from the live peer's: refused, the file named.
    await register(database, fingerprints(DEMO_INVENTORY, rule_files([])), ["api"], 2.0)
    other = tmp_path / "devices.yaml"
    other.write_text(DEMO_INVENTORY.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")}
    env |= {"HOUQIN_DATA_DIR": str(tmp_path), "HOUQIN_INVENTORY": str(other), "HOUQIN_DATABASE_URL": url}
    refused = await asyncio.to_thread(subprocess.run, [*HOUQIN, "run", "--role", "scheduler"], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode != 0
    assert "inventory devices.yaml differs from the one process" in refused.stderr, refused.stderr
