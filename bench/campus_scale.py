"""A university at scale: N dorm rooms, each an SDM120 meter and a relay module, behind Modbus TCP gateways
simulated in a process of their own (every device's requests counted there); houqin runs as real
``houqin run --role collect,rules,billing`` processes with the shipped rules, prepaid billing on PostgreSQL
and telemetry into influxd — one process on half the campus, then one process on all of it, then two
sharing the gateways by leases, then one of the two SIGKILLed.

A room is polled every ``--interval`` seconds (meter and relay). The machine running this has few cores and
also runs the simulators, PostgreSQL and influxd, so the campus is run at a shorter interval than the
60 s a site would use and the load stated at 60 s: N rooms every 10 s are the polls, readings, rule
evaluations and charges of 6 N rooms every 60 s.

Figures:
- ``kept_up`` — over the measured window, every device was asked at least once per interval plus one
  interval (poll lag under one interval) and the p99 billing lag was under 5 s (billing lag: how much
  older a meter's last charged reading is than one interval, sampled every 2 s from ``meter_billing``);
- ``rooms_per_core`` — rooms at 60 s that one process keeps up with per core it used (its CPU seconds over
  the window ÷ the window);
- ``scale_ratio`` — rooms two processes keep up with ÷ twice one process's. A process's capacity is taken
  as its rooms ÷ its CPU at that load, compared at the same load per process: one process on half the
  campus against two on all of it (2 × the first's CPU ÷ the two's together). Comparing one and two
  processes on the same campus (``scale_ratio_same_campus``) instead sets a busy process against two half
  as busy, and an event loop's CPU per unit of work falls as its load rises (more ready work per wake-up):
  at their limits both would be busy. ``machine_slowdown`` is the simulators' CPU for the same work (the
  same requests, counted) with two processes ÷ with one: how much the 2-core machine itself slowed down
  when one more busy process shared it; ``scale_ratio_machine_adjusted`` is ``scale_ratio`` with houqin's
  CPU taken as slowed down as much — what is left is what a second process costs houqin itself;
- ``failover_s`` — from the SIGKILL of one of the two until every gateway is leased to the survivor.

    .venv/bin/python bench/campus_scale.py [--rooms 2000] [--per-gateway 50] [--interval 10] [--window 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from houqin.billing.ledger import ensure_wallets, post  # noqa: E402
from houqin.inventory import load_inventory  # noqa: E402
from houqin.store import Database, upgrade_database  # noqa: E402
from houqin.store.tables import (  # noqa: E402
    EntryKind,
    Fault,
    HouqinProcess,
    MeterBilling,
)
from tests.campus_process import CampusProcess  # noqa: E402
from tests.ledger_audit import ledger_audit  # noqa: E402
from tests.servers import Influxd, Postgres, influxd_server, postgres_server, stop_all  # noqa: E402
from tests.test_gateway_leases import holders  # noqa: E402

HOUQIN = [sys.executable, "-m", "assembly"]


def inventory_text(rooms: int, per_gateway: int, interval: float, ports: dict[str, int] | None = None) -> str:
    gateways = (rooms + per_gateway - 1) // per_gateway
    lines = ["site: {name: University bench, timezone: Asia/Shanghai}",
             "tariffs: [{id: flat, price_fen_per_kwh: 56}]", "gateways:"]  # fmt: skip
    for g in range(gateways):
        port = (ports or {}).get(f"gw{g}", g + 1)
        lines.append(f"  - {{id: gw{g}, type: modbus_tcp, host: 127.0.0.1, port: {port}, timeout: 2.0}}")
    devices, rooms_out = ["devices:"], ["rooms:"]
    for n in range(rooms):
        gateway, slot = divmod(n, per_gateway)
        room = f"R{n:05d}"
        common = f"gateway: gw{gateway}, building: b{gateway}, room: {room}, poll_interval: {interval:g}"
        devices.append(f"  - {{id: {room}-m, model: eastron-sdm120, unit: {slot + 1}, {common}}}")
        devices.append(f"  - {{id: {room}-r, model: generic-relay, unit: {slot + 101}, {common}}}")
        rooms_out.append(f"  - {{id: {room}, building: b{gateway}, floor: 1, meter: {room}-m, relay: {room}-r, "
                         "tariff: flat}")  # fmt: skip
    return "\n".join(lines + devices + rooms_out) + "\n"


@dataclass
class Phase:
    processes: int
    cores: float
    poll_gap_max: float
    poll_gap_p99: float
    billing_lag_p99: float
    billing_lag_max: float
    kept_up: bool
    faults: int  # faults opened on the campus so far (its devices all answer: any is a false alarm)
    each: list[float]  # each process's cores
    simulator_cores: float  # the same work in every phase: how much the machine itself slowed down
    stored: int  # meter readings stored over the window (a device polled twice would show)
    requests: int  # requests the simulated devices answered over the window
    wakeups: int  # the houqin processes' voluntary context switches per second (their event loops waking)
    preempted: int  # their involuntary ones per second (the machine's other processes taking the CPU)


def start_houqin(data: Path, inventory: Path, url: str, influxd: Influxd) -> subprocess.Popen[bytes]:
    data.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")}
    env |= {"HOUQIN_DATA_DIR": str(data), "HOUQIN_INVENTORY": str(inventory), "HOUQIN_DATABASE_URL": url,
            "HOUQIN_INFLUX__URL": influxd.url, "HOUQIN_INFLUX__API": "v1", "HOUQIN_INFLUX__DATABASE": "campus",
            "HOUQIN_LOG_LEVEL": "WARNING"}  # fmt: skip
    log = (data / "houqin.log").open("ab")
    return subprocess.Popen([*HOUQIN, "run", "--role", "collect,rules,billing"], cwd=data, env=env,
                            stdout=log, stderr=log)  # fmt: skip


def spy_on(processes: list[subprocess.Popen[bytes]], args: Any) -> list[subprocess.Popen[bytes]]:
    """py-spy on each process over the window (``--profile``): where its CPU goes."""
    if not args.profile:
        return []
    args.profile.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    return [subprocess.Popen([spy, "record", "--pid", str(process.pid), "--duration", str(int(args.window)),
                              "--format", "raw", "--nonblocking", "-o",
                              str(args.profile / f"{len(processes)}-{process.pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for process in processes]  # fmt: skip


def cpu_seconds(pids: list[int]) -> list[float]:
    return [sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids]


def switches(pids: list[int]) -> tuple[int, int]:
    counts = [psutil.Process(pid).num_ctx_switches() for pid in pids]
    return sum(count.voluntary for count in counts), sum(count.involuntary for count in counts)


async def billing_lags(database: Database, interval: float) -> list[float]:
    async with database.session() as session:
        now = await session.scalar(select(func.now()))
        rows = (await session.execute(select(MeterBilling.last_ts))).scalars().all()
    assert now is not None
    return [max(0.0, (now - last_ts).total_seconds() - interval) for last_ts in rows]


async def measure(
    database: Database, influxd: Influxd, processes: list[subprocess.Popen[bytes]], campus: CampusProcess, args: Any,
    polled: set[str] | None = None,
) -> Phase:  # fmt: skip
    campus.measure()
    pids = [process.pid for process in processes] + [campus.pid]
    cpu_before, started, since = cpu_seconds(pids), time.monotonic(), datetime.now(UTC)
    switched = switches(pids[:-1])
    spies = spy_on(processes, args)
    lags: list[float] = []
    while time.monotonic() - started < args.window:
        await asyncio.sleep(2)
        lags += await billing_lags(database, args.interval)
    elapsed = time.monotonic() - started
    wakeups, preempted = (round((after - before) / elapsed) for after, before in zip(switches(pids[:-1]), switched,
                                                                                      strict=True))  # fmt: skip
    *each, simulator = [(after - before) / elapsed for after, before in zip(cpu_seconds(pids), cpu_before, strict=True)]
    until = datetime.now(UTC)
    for spy in spies:
        spy.wait()
    gaps = await campus.report()
    gaps_list = sorted(gap for device, gap in gaps.items() if polled is None or device in polled)
    lags.sort()
    p99 = lags[int(0.99 * (len(lags) - 1))] if lags else float("inf")
    gap_p99 = gaps_list[int(0.99 * (len(gaps_list) - 1))]
    kept_up = gaps_list[-1] < 2 * args.interval and p99 < 5.0
    async with database.session() as session:
        faults = int(await session.scalar(select(func.count()).select_from(Fault)) or 0)
    rfc3339 = "%Y-%m-%dT%H:%M:%S.%fZ"
    counted = influxd.query("campus", f"SELECT count(energy) FROM electricity WHERE time > '{since:{rfc3339}}' "
                                      f"AND time <= '{until:{rfc3339}}'")  # fmt: skip
    stored = int(counted[0]["values"][0][1]) if counted else 0
    return Phase(len(processes), sum(each), gaps_list[-1], gap_p99, p99, lags[-1] if lags else float("inf"), kept_up,
                 faults, each, simulator, stored, campus.requests, wakeups, preempted)  # fmt: skip


async def run(args: Any, postgres: Postgres, influxd: Influxd, campus: CampusProcess
              ) -> tuple[list[Phase], float, tuple[int, int]]:  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="houqin-scale-"))
    inventory = work / "devices.yaml"
    inventory.write_text(inventory_text(args.rooms, args.per_gateway, args.interval, campus.ports), encoding="utf-8")
    connection = await asyncpg.connect(host=postgres.host, port=postgres.port, user=postgres.user, database="postgres")
    await connection.execute('CREATE DATABASE "scale"')
    await connection.close()
    url = postgres.url("scale")
    database = Database(url)
    await upgrade_database(database)
    rooms = list(load_inventory(inventory).rooms)
    await ensure_wallets(database, rooms)
    async with database.session() as session:
        for room in rooms:
            await post(session, room, EntryKind.ADJUSTMENT, 10_000_000, datetime.now(UTC), key=f"open:{room}",
                       cause="bench")  # fmt: skip
        await session.commit()
    gateways = {f"gw{g}" for g in range((args.rooms + args.per_gateway - 1) // args.per_gateway)}
    half = work / "half.yaml"
    half.write_text(inventory_text(args.rooms // 2, args.per_gateway, args.interval, campus.ports), encoding="utf-8")
    phases: list[Phase] = []
    processes = [start_houqin(work / "half", half, url, influxd)]
    try:
        await asyncio.sleep(args.interval * 3)  # started, every device polled, billing baselines made
        phases.append(await measure(database, influxd, processes, campus, args, set(load_inventory(half).devices)))
        print(f"one process, half the campus: {phases[-1]}", flush=True)
        stop_all(processes, seconds=60)  # its inventory is not the campus's: it leaves before they start
        processes = [start_houqin(work / "one", inventory, url, influxd)]
        await asyncio.sleep(args.interval * 3)
        phases.append(await measure(database, influxd, processes, campus, args))
        print(f"one process: {phases[-1]}", flush=True)
        processes.append(start_houqin(work / "two", inventory, url, influxd))
        deadline = time.monotonic() + 120
        while True:  # the newcomer takes its half, one gateway a round
            held = await holders(database)
            counts = sorted(list(held.values()).count(holder) for holder in set(held.values()))
            if len(held) == len(gateways) and len(counts) == 2 and counts[0] >= len(gateways) // 2:
                break
            assert time.monotonic() < deadline, f"the second process did not get its half: {counts}"
            await asyncio.sleep(1)
        await asyncio.sleep(args.interval * 2)
        phases.append(await measure(database, influxd, processes, campus, args))
        print(f"two processes: {phases[-1]}", flush=True)
        victim = processes.pop(0)
        async with database.session() as session:
            victim_holder = await session.scalar(select(HouqinProcess.id).where(HouqinProcess.pid == victim.pid))
        orphaned = {gateway for gateway, holder in (await holders(database)).items() if holder == victim_holder}
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        killed = time.monotonic()
        while True:
            now_held = await holders(database)
            if all(now_held.get(gateway) not in (None, victim_holder) for gateway in orphaned):
                break
            assert time.monotonic() - killed < 60, "the survivor did not take the gateways over"
            await asyncio.sleep(0.1)
        failover = time.monotonic() - killed
        await asyncio.sleep(args.interval * 2)  # the survivor polls and bills the dead one's meters
        stop_all(processes, seconds=60)
        audit = await ledger_audit(database, influxd, "campus", 56)
    finally:
        stop_all(processes)
        await database.close()
    return phases, failover, audit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--per-gateway", type=int, default=50)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--profile", type=Path, help="py-spy each process over the measured windows, into here")
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="houqin-scale-sim-")) / "devices.yaml"
    path.write_text(inventory_text(args.rooms, args.per_gateway, args.interval), encoding="utf-8")
    campus = CampusProcess(path)
    try:
        campus.start()
        with postgres_server() as postgres, influxd_server() as influxd:
            phases, failover, audit = asyncio.run(run(args, postgres, influxd, campus))
    finally:
        campus.stop()
    halved, one, two = phases
    at_60 = args.rooms * 60 / args.interval
    rooms_per_core = at_60 / one.cores
    scale_ratio = 2 * halved.cores / two.cores
    same_campus = one.cores / two.cores
    slowdown = two.simulator_cores / one.simulator_cores
    for phase in phases:
        print(f"{phase.processes} process(es): {phase.cores:.2f} cores; poll gap max {phase.poll_gap_max:.1f} s "
              f"(p99 {phase.poll_gap_p99:.1f} s) at {args.interval:g} s; billing lag p99 {phase.billing_lag_p99:.1f} s "
              f"(max {phase.billing_lag_max:.1f} s); kept up: {phase.kept_up}; "
              f"faults so far: {phase.faults}; each process {[round(cores, 3) for cores in phase.each]} cores, "
              f"simulators {phase.simulator_cores:.3f}; meter readings stored {phase.stored}, "
              f"requests answered {phase.requests}; houqin's wake-ups {phase.wakeups}/s, "
              f"preemptions {phase.preempted}/s")  # fmt: skip
    print(f"rooms={args.rooms} interval_s={args.interval:g} rooms_at_60s={at_60:.0f} "
          f"kept_up={int(halved.kept_up and one.kept_up and two.kept_up)} cores_half={halved.cores:.3f} "
          f"cores_one={one.cores:.3f} cores_two={two.cores:.3f} rooms_per_core={rooms_per_core:.0f} "
          f"scale_ratio={scale_ratio:.2f} scale_ratio_same_campus={same_campus:.2f} "
          f"machine_slowdown={slowdown:.2f} scale_ratio_machine_adjusted={scale_ratio * slowdown:.2f} "
          f"failover_s={failover:.2f} "
          f"billing_lag_p99_s={one.billing_lag_p99:.2f} poll_gap_max_s={one.poll_gap_max:.1f} "
          f"false_faults={two.faults} ledger_mismatches={audit[0]} charge_mismatches={audit[1]}")  # fmt: skip


if __name__ == "__main__":
    main()
