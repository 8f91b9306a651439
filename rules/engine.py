"""The rules engine: a sink of the pipeline that watches every device with the rules that apply to it,
and a component of ``houqin run`` whose tick lets time speak (a device that went silent is offline).

Faults and their orders live in the SQL store (``houqin.repairs``); the engine keeps one small ``Watch``
per rule and device, restored from the open faults when it starts, so a restart in the middle of a fault
neither loses it nor opens it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import string
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter

from houqin.commands import CommandQueue, CommandRequest
from houqin.inventory import Inventory
from houqin.readings import Reading
from houqin.repairs.faults import FaultBook, FaultSpec, OrderChange
from houqin.settings import RepairSettings
from houqin.store.tables import CommandSource, FaultState, Priority
from houqin.telemetry import TelemetryStore
from houqin.telemetry.influx_client import InfluxUnavailable
from rules.anomaly import judge_anomaly
from rules.balance import judge_balance
from rules.conditions import Transition, Verdict, Watch, elapse, observe, silence_limit
from rules.loader import applies
from rules.model import HISTORY_CONDITIONS, Anomaly, Offline, Rule
from rules.silence import SharedSilence

log = logging.getLogger(__name__)

# How often anomaly checks try the telemetry store again while it cannot be read.
HISTORY_RETRY = timedelta(seconds=30)
SILENCE_EVERY_S = 5.0
TRANSITIONS = Counter("houqin_rule_transitions_total", "Fault transitions", ["rule", "transition"])

OnOrderChange = Callable[[OrderChange], Awaitable[None]]


class _TitleFields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render_title(template: str, watch: Watch) -> str:
    device = watch.device
    values: dict[str, Any] = {
        "device": device.id,
        "building": device.building,
        "floor": device.floor or "",
        "room": device.room or "",
        "value": watch.value if watch.value is not None else "?",
    }
    values.update(watch.fields)
    try:
        return string.Formatter().vformat(template, (), _TitleFields(values))
    except (ValueError, TypeError):
        # A placeholder with a number format whose value is missing: say what is known without the format.
        plain = "".join(
            text + (f"{{{name}}}" if name else "") for text, name, _, _ in string.Formatter().parse(template)
        )
        return string.Formatter().vformat(plain, (), _TitleFields(values))


class RulesEngine:
    def __init__(
        self,
        rules: Sequence[Rule],
        inventory: Inventory,
        faults: FaultBook,
        settings: RepairSettings,
        timezone: ZoneInfo,
        on_order_change: OnOrderChange | None = None,
        tick: float = 1.0,
        telemetry: TelemetryStore | None = None,
        commands: CommandQueue | None = None,
        shared: bool = False,
    ) -> None:
        self.rules = list(rules)
        self.inventory = inventory
        self.faults = faults
        self.settings = settings
        self.timezone = timezone
        self.on_order_change = on_order_change
        self.tick = tick
        self.telemetry = telemetry
        self.commands = commands
        # Several processes feed one telemetry store: a device silent here may be heard by another.
        self.silence = SharedSilence(telemetry) if shared and telemetry is not None else None
        self._watches: dict[str, list[Watch]] = {}
        self._timed: list[Watch] = []
        self._history: list[Watch] = []  # anomaly watches, judged from the telemetry store
        self._history_retry_at: datetime | None = None  # set while the store cannot be read
        for device in inventory.devices.values():
            for rule in self.rules:
                if applies(rule, device, inventory):
                    watch = Watch(rule, device)
                    self._watches.setdefault(device.id, []).append(watch)
                    if isinstance(rule.condition, Offline):
                        self._timed.append(watch)
                    elif isinstance(rule.condition, HISTORY_CONDITIONS):
                        self._history.append(watch)
        if self._history and telemetry is None:
            log.warning("rules: %d anomaly watches cannot run without the telemetry store", len(self._history))
        self._restored = asyncio.Event()
        # Silence is looked for every few seconds, not every tick: walking every offline watch each second
        # was a few per cent of a process's CPU at 4,000 devices, and the limits are minutes (a sixth of the
        # shortest limit keeps the shortest one within a sixth of itself).
        limits = [silence_limit(watch).total_seconds() for watch in self._timed]
        self._silence_every = timedelta(seconds=min([SILENCE_EVERY_S, *(limit / 6 for limit in limits)]))
        self._silence_due: datetime | None = None
        self.evaluations = 0

    @property
    def name(self) -> str:
        return "rules"

    @property
    def watches(self) -> int:
        return sum(len(watches) for watches in self._watches.values())

    async def restore(self, now: datetime | None = None) -> None:
        """Resume the open faults of the SQL store, and start every silence clock now."""
        now = now or datetime.now(UTC)
        by_key = {(w.rule.id, w.device.id): w for watches in self._watches.values() for w in watches}
        for watch in self._timed:
            watch.last_seen = watch.last_seen or now
        for index, watch in enumerate(self._history):
            # Spread the history checks over their period rather than querying for every device at once.
            condition = watch.rule.condition
            period = condition.check_every if isinstance(condition, HISTORY_CONDITIONS) else 900.0
            watch.next_check = now + timedelta(seconds=period * index / max(1, len(self._history)))
        for fault in await self.faults.open_faults():
            resumed = by_key.get((fault.rule_id, fault.device))
            if resumed is None:
                continue  # its rule is gone or no longer applies: it stays open for staff to handle
            watch = resumed
            watch.fault_id, watch.phase, watch.value = fault.id, fault.state, fault.value
            watch.bad_since = fault.started_at
        self._restored.set()
        log.info("rules: %d rules watching %d devices (%d watches)", len(self.rules), len(self._watches), self.watches)

    async def consume(self, readings: Sequence[Reading]) -> None:
        await self._restored.wait()
        for reading in readings:
            if reading.tags.get("kind") == "device_health":
                continue  # a failed poll is not a reading: offline rules go by the readings that arrive
            watches = self._watches.get(reading.device)
            if not watches:
                continue
            fields = dict(reading.fields)  # one copy per reading, shared by its watches (none changes it)
            for watch in watches:
                self.evaluations += 1
                watch.fields = fields
                verdict = observe(watch, reading.fields, reading.ts, self.timezone)
                if verdict is not None:
                    await self._apply(watch, verdict, reading.ts)

    async def run(self, stop: asyncio.Event) -> None:
        if not self._restored.is_set():
            await self.restore()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick)
            now = datetime.now(UTC)
            if self._silence_due is None or now >= self._silence_due:
                self._silence_due = now + self._silence_every
                await self.check_silence(now)
            await self.check_history(now)

    async def check_silence(self, now: datetime) -> None:
        """Let time speak: a device not heard of for its offline rule's limit is offline."""
        silent = [(watch, verdict) for watch in self._timed if (verdict := elapse(watch, now)) is not None]
        if silent and self.silence is not None:
            silent = await self.silence.verdicts(silent, now)
        for watch, verdict in silent:
            await self._apply(watch, verdict, now)

    async def check_history(self, now: datetime) -> None:
        """Judge the anomaly watches whose time has come, from the telemetry store. While the store cannot
        be read the checks pause (said once, tried again every ``HISTORY_RETRY``) and resume where they
        were: a watch that could not be judged is judged at the next try."""
        if self.telemetry is None or (self._history_retry_at is not None and now < self._history_retry_at):
            return
        for watch in self._history:
            condition = watch.rule.condition
            assert isinstance(condition, HISTORY_CONDITIONS)
            if watch.next_check is not None and watch.next_check > now:
                continue
            if self.silence is not None and not _heard_here(watch, now, condition.check_every):
                # Processes share the devices: the one that reads this device judges it (each would run the
                # same query and reach the same verdict). It is judged here once its readings arrive here.
                continue
            kind = self.inventory.model_of(watch.device).kind
            try:
                if isinstance(condition, Anomaly):
                    verdict = await judge_anomaly(watch, self.telemetry, kind, now, self.timezone)
                else:
                    verdict = await judge_balance(watch, self.telemetry, self.inventory, kind, now, self.timezone)
            except Exception as exc:
                if self._history_retry_at is None:
                    log.error("rules: anomaly checks paused, the telemetry store cannot be read (%s: %s); "
                              "trying again every %d s", type(exc).__name__, exc, HISTORY_RETRY.seconds,
                              exc_info=not isinstance(exc, InfluxUnavailable))  # fmt: skip
                self._history_retry_at = now + HISTORY_RETRY
                return
            if self._history_retry_at is not None:
                log.info("rules: the telemetry store answers again; anomaly checks resume")
                self._history_retry_at = None
            watch.next_check = now + timedelta(seconds=condition.check_every)
            if verdict is not None:
                await self._apply(watch, verdict, now)

    def _spec(self, watch: Watch) -> FaultSpec:
        rule, device = watch.rule, watch.device
        return FaultSpec(
            rule_id=rule.id, device=device.id, severity=rule.severity, category=rule.repair.category,
            priority=Priority(rule.repair.priority), title=render_title(rule.title, watch),
            building=device.building, floor=device.floor, room=device.room,
            open_order="repair_order" in rule.actions, auto_resolve=rule.auto_resolve,
        )  # fmt: skip

    async def _apply(self, watch: Watch, verdict: Verdict, now: datetime) -> None:
        for transition in watch.step(verdict, now):
            TRANSITIONS.labels(watch.rule.id, transition.value).inc()
            try:
                await self._persist(watch, transition, now)
            except Exception:
                # The store is unreachable: the watch keeps its phase and the next verdict tries again.
                log.exception("rules: cannot record %s of %s on %s", transition.value, watch.rule.id, watch.device.id)
                self._undo(watch, transition)
                return

    async def _persist(self, watch: Watch, transition: Transition, now: datetime) -> None:
        spec = self._spec(watch)
        if transition is Transition.BEGIN:
            fault = await self.faults.pending(spec, watch.bad_since or now, watch.value)
            watch.fault_id = fault.id
            if fault.state == FaultState.ACTIVE:
                watch.phase = "active"  # another process got there first
            return
        assert watch.fault_id is not None
        if transition is Transition.DISCARD:
            await self.faults.discard(watch.fault_id)
            watch.fault_id = None
        elif transition is Transition.ACTIVATE:
            returns = timedelta(hours=self.settings.fault_returns_within_hours)
            change = await self.faults.activate(watch.fault_id, spec, now, watch.value, returns)
            log.warning("fault %s on %s: %s", watch.rule.id, watch.device.id, spec.title)
            if "cut_relay" in watch.rule.actions:
                await self._relay(watch, "off", now, f"cut: {spec.title}")
            if change is not None and self.on_order_change is not None:
                await self.on_order_change(change)
        elif transition is Transition.CLEAR:
            if "cut_relay" in watch.rule.actions and watch.rule.restore == "on_clear":
                await self._relay(watch, "on", now, f"restored: {spec.title} has cleared")
            change = await self.faults.clear(watch.fault_id, now, watch.rule.auto_resolve)
            log.info("fault %s on %s cleared", watch.rule.id, watch.device.id)
            watch.fault_id = None
            if change is not None and self.on_order_change is not None:
                await self.on_order_change(change)

    async def _relay(self, watch: Watch, action: str, now: datetime, reason: str) -> None:
        """Cut or restore the power of the watched device's room (idempotent per fault and action)."""
        room = self.inventory.rooms.get(watch.device.room or "")
        switches = self.inventory.switches(room) if room is not None else []
        if not switches or self.commands is None:
            log.error("rule %s wants to switch the relay of %s, which has none houqin can command",
                      watch.rule.id, watch.device.id)  # fmt: skip
            return
        # A safety cut takes every circuit of the room, whatever its cut policy says.
        for switch in switches:
            suffix = "" if switch.circuit is None else f":{switch.circuit}"
            request = CommandRequest(switch.device, switch.command, action, CommandSource.RULE, reason=reason,
                                     key=f"fault:{watch.fault_id}:relay:{action}{suffix}")  # fmt: skip
            await self.commands.enqueue(request, now)

    def _undo(self, watch: Watch, transition: Transition) -> None:
        back = {Transition.BEGIN: "ok", Transition.ACTIVATE: "pending", Transition.DISCARD: "pending",
                Transition.CLEAR: "active"}  # fmt: skip
        watch.phase = back[transition]


def _heard_here(watch: Watch, now: datetime, period: float) -> bool:
    """This process received a reading of the watch's device lately: within the watch's check period or
    three of the device's poll intervals, whichever is longer (a meter read every half hour is still
    this process's between two readings)."""
    window = max(period, 3 * watch.device.poll_interval)
    return watch.last_seen is not None and (now - watch.last_seen).total_seconds() <= window
