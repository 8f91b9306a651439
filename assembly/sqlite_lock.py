"""SQLite serves one houqin process: a second ``houqin run`` on the same database file is refused at
start, naming the process that holds it. Several processes need PostgreSQL (the leases and locks that
share work between them are PostgreSQL's). Admin commands (``houqin users``, ``houqin billing``) open the
file briefly and are not refused."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class SqliteInUseError(RuntimeError):
    """Another houqin process runs on this SQLite database."""


@contextlib.contextmanager
def sole_process(database_file: Path) -> Iterator[None]:
    """Hold the database's process lock (``<file>.lock``, its holder's pid inside) while the block runs;
    the kernel releases it when the process ends, however it ends."""
    path = database_file.with_name(database_file.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise SqliteInUseError(
                f"{database_file}: another houqin process (pid {holder}) runs on this SQLite database, and SQLite "
                "serves one process; run several houqin processes on PostgreSQL (HOUQIN_DATABASE_URL)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
