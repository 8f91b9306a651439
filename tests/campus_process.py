"""A simulated campus in a process of its own, as a site's devices are: its Modbus gateways serve on free
ports (and its MQTT devices publish to a broker, if given one), and it reports, per device, the longest
time the device went unasked over a window — how a poll gap shows from the devices' side, whichever
houqin process polls them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any

SAMPLE_S = 0.05


class CampusProcess:
    """``start()`` it, point houqin at ``ports``, then ``measure()`` … ``report()`` for the gaps."""

    def __init__(self, inventory: Path, mqtt_url: str | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._control: Any = context.Queue()
        self._results: Any = context.Queue()
        self._ports: Any = context.Queue()
        self._process = context.Process(target=_simulate, args=(str(inventory), mqtt_url, self._ports,
                                                                self._control, self._results), daemon=True)  # fmt: skip
        self.ports: dict[str, int] = {}
        self.requests = 0  # requests the devices answered over the last window reported

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def start(self, timeout: float = 300) -> dict[str, int]:
        """Start the simulators: the port of each simulated gateway, by gateway id."""
        self._process.start()
        self.ports = self._ports.get(timeout=timeout)
        return self.ports

    def measure(self) -> None:
        """Start a window: gaps are counted from now."""
        self._control.put("measure")

    async def report(self) -> dict[str, float]:
        """End the window: per device, the longest it went unasked in it (until now for one not asked since)."""
        self._control.put("report")
        gaps: dict[str, float]
        gaps, self.requests = await asyncio.to_thread(self._results.get, True, 60)
        return gaps

    def stop(self) -> None:
        if self._process.is_alive():
            self._control.put("stop")
            self._process.join(30)
        if self._process.is_alive():
            self._process.kill()


def _simulate(path: str, mqtt_url: str | None, ports: Any, control: Any, results: Any) -> None:
    asyncio.run(_serve(path, mqtt_url, ports, control, results))


async def _serve(path: str, mqtt_url: str | None, ports: Any, control: Any, results: Any) -> None:
    from collectors.simulators.campus import SimulatedCampus
    from houqin.inventory import load_inventory
    from houqin.settings import Settings

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # a killed client is not news here
    campus = SimulatedCampus(load_inventory(Path(path)), Settings().tz)
    await campus.start()
    stop = asyncio.Event()
    mqtt = asyncio.create_task(campus.mqtt_devices(mqtt_url).run(stop)) if mqtt_url else None
    ports.put({gateway_id: gateway.port for gateway_id, gateway in campus.gateways.items()})
    seen = {device_id: -1 for device_id in campus.devices}
    last: dict[str, float] = {}
    longest: dict[str, float] | None = None
    window_start, requests_before = 0.0, 0
    while True:
        while not control.empty():
            order = control.get()
            if order == "measure":
                longest, window_start = {}, time.monotonic()
                requests_before = sum(getattr(device, "requests", 0) for device in campus.devices.values())
            elif order == "report" and longest is not None:
                now = time.monotonic()
                # A device not asked since its last request is silent until now.
                gaps = {d: max(longest.get(d, 0.0), now - max(last.get(d, window_start), window_start))
                        for d in campus.devices}  # fmt: skip
                requests = sum(getattr(device, "requests", 0) for device in campus.devices.values())
                results.put((gaps, requests - requests_before))
                longest = None
            elif order == "stop":
                stop.set()
                if mqtt is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(mqtt, 5)
                await campus.stop()
                return
        now = time.monotonic()
        for device_id, device in campus.devices.items():
            requests = getattr(device, "requests", 0)
            if requests != seen[device_id]:
                seen[device_id] = requests
                if longest is not None and device_id in last:
                    gap = now - max(last[device_id], window_start)
                    longest[device_id] = max(longest.get(device_id, 0.0), gap)
                last[device_id] = now
        await asyncio.sleep(SAMPLE_S)
