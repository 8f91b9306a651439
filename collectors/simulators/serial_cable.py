"""A simulated serial cable: two pseudo-terminals joined by ``socat``, so a simulated RS-485 bus can sit on
one end while houqin's serial link opens the other, through the same pyserial code as a USB adapter."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path

READY_WITHIN = 10.0  # seconds for socat to make its pseudo-terminals


class SerialCableUnavailable(RuntimeError):  # noqa: N818 - reads as a state
    """socat is not installed, or did not make the pseudo-terminals."""


class SerialCable:
    """``houqin_end`` and ``device_end`` are tty paths: what is written to one is read from the other."""

    def __init__(self, name: str = "bus") -> None:
        self.name = name
        self._workdir: Path | None = None
        self._process: asyncio.subprocess.Process | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("socat") is not None

    @property
    def houqin_end(self) -> str:
        return str(self._ends()[0])

    @property
    def device_end(self) -> str:
        return str(self._ends()[1])

    def _ends(self) -> tuple[Path, Path]:
        if self._workdir is None:
            raise SerialCableUnavailable(f"serial cable {self.name} is not started")
        return self._workdir / "houqin", self._workdir / "device"

    async def start(self) -> None:
        binary = shutil.which("socat")
        if binary is None:
            raise SerialCableUnavailable("socat is not installed (Debian package socat)")
        self._workdir = Path(tempfile.mkdtemp(prefix=f"houqin-serial-{self.name}-"))
        houqin_end, device_end = self._ends()
        self._process = await asyncio.create_subprocess_exec(
            binary,
            f"pty,raw,echo=0,link={houqin_end}",
            f"pty,raw,echo=0,link={device_end}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(READY_WITHIN):
                while not (houqin_end.exists() and device_end.exists()):
                    if self._process.returncode is not None:
                        error = await self._process.stderr.read() if self._process.stderr else b""
                        raise SerialCableUnavailable(f"socat exited: {error.decode(errors='replace').strip()}")
                    await asyncio.sleep(0.02)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                await self._process.wait()
        self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
