"""A houqin process run as a user runs it (``houqin demo``, ``houqin run``), for tests that need the whole
thing live: its own data directory, the demo inventory, stopped cleanly by SIGTERM."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tests.conftest import DEMO_INVENTORY

HOUQIN = [sys.executable, "-m", "assembly"]


@contextlib.contextmanager
def houqin_serving(
    *args: str, data: Path, env: dict[str, str] | None = None, pipe_stderr: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """``houqin ARGS`` with its own data directory and the demo inventory, stopped by SIGTERM (which must
    end it cleanly) or killed if the test failed first. Its log goes to ``houqin.log`` there unless the
    test reads it from the pipe."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")}
    environment |= {"HOUQIN_DATA_DIR": str(data / "data"), "HOUQIN_INVENTORY": str(DEMO_INVENTORY), **(env or {})}
    log = (data / "houqin.log").open("w")
    stderr = subprocess.PIPE if pipe_stderr else log
    process = subprocess.Popen([*HOUQIN, *args], cwd=data, env=environment, stderr=stderr, text=True)
    try:
        yield process
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def served_url(
    process: subprocess.Popen[str], seconds: float = 120, log: Path | None = None, head: list[str] | None = None
) -> str:
    """The API's address, read from the "houqin is up" line of a process started with ``pipe_stderr``
    (the lines before it are added to ``head`` if given). The rest of its log keeps being read (into
    ``log`` if given), so a full pipe never stalls it."""
    started = time.monotonic()
    lines = head if head is not None else []
    assert process.stderr is not None
    while time.monotonic() - started < seconds:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if match := re.search(r"houqin is up: (http://\S+)", line):
            threading.Thread(target=_drain, args=(process.stderr, log, lines), daemon=True).start()
            return match.group(1)
    raise AssertionError("houqin did not come up:\n" + "".join(lines))


def _drain(stream: IO[str], log: Path | None, head: list[str]) -> None:
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(log.open("w")) if log else None
        if sink:
            sink.writelines(head)
        for line in stream:
            if sink:
                sink.write(line)
                sink.flush()
