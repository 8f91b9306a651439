"""houqin's dashboards: what facilities staff see in Grafana. InfluxQL for readings (InfluxDB 1.x, 2.x
through its DBRP mapping, 3.x), SQL for what lives in PostgreSQL (wallets, payments, repair orders,
commands, schedule firings).

Conventions the queries rely on: readings carry the inventory's tags (``building``, ``floor``, ``room``,
``device``, ``gateway``, ``model``); a building's incoming meter carries the site tag ``circuit: main``
(so a building's consumption is not counted twice, once at the incomer and once per room); per-day
figures are days in the site's timezone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from grafana.builder import Dashboard, Panel, Variable, influx, sql
from houqin import dashboards as refs
from houqin.repairs.orders import ACTIVE

ON_OFF = (
    {
        "type": "value",
        "options": {
            "true": {"text": "on", "color": "green", "index": 0},
            "false": {"text": "off", "color": "text", "index": 1},
        },
    },
)
ONLINE = (
    {
        "type": "value",
        "options": {
            "true": {"text": "online", "color": "green", "index": 0},
            "false": {"text": "offline", "color": "red", "index": 1},
        },
    },
)


@dataclass(frozen=True)
class BuildingFacts:
    """What a building's intensity panels divide by, and the meters its whole electricity use is read from."""

    id: str
    name: str
    floor_area_m2: float | None
    occupants: int | None
    meters: tuple[str, ...]


@dataclass(frozen=True)
class Site:
    """What the dashboards are built for: days in ``tz``; intensities of ``buildings``."""

    tz: str
    buildings: tuple[BuildingFacts, ...] = ()


TABLE = {"showHeader": True, "cellHeight": "sm"}
BARS = {"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}


def building_totals(measurement: str, counter: str, where: str, tz: str) -> str:
    """How far each building's cumulative counters (kWh, m³) advanced in the panel's range: the advance of
    each device, summed per building."""
    return f"""SELECT sum("used") FROM (SELECT spread("{counter}") AS "used" FROM "{measurement}" WHERE {where}
        GROUP BY "device", "building") GROUP BY "building" tz('{tz}')"""


def building_curves(measurement: str, rate: str, where: str, scale: str = "") -> str:
    """A building's rate (power, flow) over time: each device's mean per interval, summed per building (a
    mean over all devices would halve a building with two incomers)."""
    return f"""SELECT sum("mean"){scale} FROM (SELECT mean("{rate}") FROM "{measurement}" WHERE {where}
        GROUP BY time($__interval), "device", "building") WHERE $timeFilter
        GROUP BY time($__interval), "building" fill(none)"""


def campus_energy(site: Site) -> Dashboard:
    tz = site.tz
    mains = "\"circuit\" = 'main' AND $timeFilter"
    board = Dashboard(
        refs.CAMPUS_ENERGY.uid,
        refs.CAMPUS_ENERGY.title,
        "Load and consumption of the whole campus, by building "
        "(building incomers tagged circuit: main) and by dorm room.",
        tags=("energy",),
    )
    board.row(
        Panel(
            "Campus load now",
            "stat",
            (
                influx(
                    f"""
            SELECT sum("last") / 1000 FROM (SELECT last("power") FROM "electricity" WHERE {mains} GROUP BY "device")
            """,
                    alias="kW",
                ),
            ),
            width=6,
            height=6,
            unit="kwatt",
            decimals=1,
            description="Sum of the latest power of every building incomer.",
        ),
        Panel(
            "kWh today by building",
            "bargauge",
            (influx(building_totals("electricity", "energy", mains, tz), alias="$tag_building"),),
            width=9,
            height=6,
            unit="kwatth",
            time_from="now/d",
            options=BARS,
        ),
        Panel(
            "kWh this month by building",
            "bargauge",
            (influx(building_totals("electricity", "energy", mains, tz), alias="$tag_building"),),
            width=9,
            height=6,
            unit="kwatth",
            time_from="now/M",
            options=BARS,
        ),
    )
    board.row(
        Panel(
            "Building load",
            "timeseries",
            (influx(building_curves("electricity", "power", mains, scale=" / 1000"), alias="$tag_building"),),
            width=16,
            height=9,
            unit="kwatt",
            stack=True,
        ),
        Panel(
            "Top 10 rooms (kWh)",
            "table",
            (
                influx(
                    """
            SELECT top("kwh", "room", 10) AS "kWh" FROM (SELECT sum("kwh") AS "kwh" FROM (SELECT spread("energy") AS
            "kwh" FROM "electricity" WHERE "room" != '' AND $timeFilter GROUP BY "room", "device") GROUP BY "room")""",
                    table=True,
                ),
            ),
            width=8,
            height=9,
            decimals=2,
            options=TABLE,
            description="Dorm rooms that used the most energy in the dashboard's time range.",
        ),
    )
    board.row(
        Panel(
            "kWh this month by sub-item",
            "bargauge",
            (
                influx(
                    f"""SELECT sum("used") FROM (SELECT spread("energy") AS "used" FROM "electricity"
                WHERE "energy_code" =~ /^01[A-D]/ AND $timeFilter GROUP BY "device", "energy_code")
                GROUP BY "energy_code" tz('{tz}')""",
                    alias="$tag_energy_code",
                ),
            ),
            width=12,
            height=8,
            unit="kwatth",
            time_from="now/M",
            options=BARS,
            description="Electricity by the national sub-item code of its meters (01A00 lighting and sockets, "
            "01B00 air conditioning, 01C00 power, 01D00 special); houqin's energy page adds intensities.",
        ),
    )
    per_m2 = intensity_panel("kWh per m² this month", site, "floor_area_m2", "gross floor area")
    per_person = intensity_panel("kWh per occupant this month", site, "occupants", "occupants")
    if per_m2 is not None or per_person is not None:
        board.row(*(panel for panel in (per_m2, per_person) if panel is not None))
    return board


def intensity_panel(title: str, site: Site, divisor: Literal["floor_area_m2", "occupants"], what: str) -> Panel | None:
    """A building's electricity this month divided by its area or its people (the inventory's
    ``buildings``), from the meters that measure its whole use; None when no building gives the figure."""
    queries = []
    for building in site.buildings:
        by = getattr(building, divisor)
        if not by or not building.meters:
            continue
        devices = "|".join(re.escape(meter) for meter in building.meters)
        queries.append(influx(f"""SELECT sum("used") / {by:g} FROM (SELECT spread("energy") AS "used"
            FROM "electricity" WHERE "device" =~ /^({devices})$/ AND $timeFilter GROUP BY "device")""",
                              alias=building.name or building.id))  # fmt: skip
    if not queries:
        return None
    return Panel(title, "bargauge", tuple(queries), width=12, height=8, unit="kwatth", decimals=2,
                 time_from="now/M", options=BARS,
                 description=f"Each building's electricity this month (its main meters, or its room meters where "
                             f"it has none) divided by its {what} as the inventory gives it; a building without "
                             "that figure is left out. A new figure shows once the dashboards are published "
                             "again.")  # fmt: skip


def dorm_electricity(site: Site) -> Dashboard:
    tz = site.tz
    rooms = "room IN ($room)"
    board = Dashboard(
        refs.DORM_ELECTRICITY.uid,
        refs.DORM_ELECTRICITY.title,
        "Prepaid dorm rooms: power, energy, balances, rooms cut off or tripped, top-ups.",
        tags=("energy", "prepaid"),
        variables=(
            Variable(
                "building",
                "Building",
                influx("""SHOW TAG VALUES FROM "electricity" WITH KEY = "building"
                     WHERE "room" != ''"""),
            ),
            Variable(
                "floor",
                "Floor",
                influx("""SHOW TAG VALUES FROM "electricity" WITH KEY = "floor"
                     WHERE "room" != '' AND "building" =~ /^$building$/"""),
            ),
            Variable(
                "room",
                "Room",
                influx("""SHOW TAG VALUES FROM "electricity" WITH KEY = "room"
                     WHERE "building" =~ /^$building$/ AND "floor" =~ /^$floor$/"""),
            ),
        ),
    )
    board.row(
        Panel(
            "Rooms by state",
            "stat",
            (
                sql(f"""
            SELECT count(*) FILTER (WHERE state = 'normal' AND NOT coalesce(tripped_until > now(), false)) AS "normal",
                   count(*) FILTER (WHERE state = 'low') AS "low balance",
                   count(*) FILTER (WHERE state = 'cut_off') AS "cut off",
                   count(*) FILTER (WHERE tripped_until > now()) AS "tripped"
            FROM wallets WHERE {rooms}"""),
            ),
            width=10,
            height=5,
            options={
                "colorMode": "background",
                "textMode": "value_and_name",
                "reduceOptions": {"calcs": ["lastNotNull"]},
            },
            thresholds=((None, "blue"),),
        ),
        Panel(
            "Rooms low, cut off or tripped",
            "table",
            (
                sql(f"""
            SELECT room AS "room",
                   CASE WHEN tripped_until > now() THEN 'tripped' ELSE state END AS "state",
                   balance_fen / 100.0 AS "balance (yuan)", trips AS "overload trips", updated_at AS "since"
            FROM wallets WHERE {rooms} AND (state <> 'normal' OR tripped_until > now())
            ORDER BY balance_fen"""),
            ),
            width=14,
            height=5,
            options=TABLE,
        ),
    )
    board.row(
        Panel(
            "Room power",
            "timeseries",
            (
                influx(
                    """
            SELECT sum("power") FROM (SELECT mean("power") AS "power" FROM "electricity" WHERE "room" =~ /^$room$/
            AND $timeFilter GROUP BY time($__interval), "room", "device" fill(none))
            GROUP BY time($__interval), "room" fill(none)""",
                    alias="$tag_room",
                ),
            ),
            width=12,
            height=9,
            unit="watt",
        ),
        Panel(
            "Room energy per day",
            "barchart",
            (
                influx(
                    f"""
            SELECT sum("kwh") FROM (SELECT spread("energy") AS "kwh" FROM "electricity" WHERE "room" =~ /^$room$/
            AND $timeFilter GROUP BY time(1d), "room", "device" fill(none) tz('{tz}'))
            GROUP BY time(1d), "room" fill(none) tz('{tz}')""",
                    alias="$tag_room",
                ),
            ),
            width=12,
            height=9,
            unit="kwatth",
            options={"xTickLabelRotation": -45},
        ),
    )
    board.row(
        Panel(
            "Top-ups per day",
            "timeseries",
            (
                sql(
                    f"""
            SELECT date_trunc('day', paid_at AT TIME ZONE '{tz}') AT TIME ZONE '{tz}' AS "time",
                   sum(amount_fen) / 100.0 AS "yuan", count(*) AS "top-ups"
            FROM payment_orders WHERE state = 'paid' AND $__timeFilter(paid_at) AND {rooms}
            GROUP BY 1 ORDER BY 1""",
                    table=False,
                ),
            ),
            width=12,
            height=8,
            time_from="now-30d",
            draw="bars",
        ),
        Panel(
            "Balances",
            "table",
            (
                sql(f"""
            SELECT room AS "room", balance_fen / 100.0 AS "balance (yuan)", state AS "state"
            FROM wallets WHERE {rooms} ORDER BY balance_fen, room"""),
            ),
            width=12,
            height=8,
            options=TABLE,
        ),
    )
    return board


def water(site: Site) -> Dashboard:
    tz = site.tz
    meters = '"building" =~ /^$building$/ AND $timeFilter'
    board = Dashboard(
        refs.WATER.uid,
        refs.WATER.title,
        "Flow and consumption by building, the night flow that betrays a leak, and the leaks houqin found.",
        tags=("water",),
        variables=(Variable("building", "Building", influx('SHOW TAG VALUES FROM "water" WITH KEY = "building"')),),
    )
    board.row(
        Panel(
            "Flow by building",
            "timeseries",
            (influx(building_curves("water", "flow", meters), alias="$tag_building"),),
            width=16,
            height=9,
            unit="flowlpm",
        ),
        Panel(
            "Water today by building",
            "bargauge",
            (influx(building_totals("water", "total", meters, tz), alias="$tag_building"),),
            width=8,
            height=9,
            unit="m3",
            time_from="now/d",
            options=BARS,
        ),
    )
    board.row(
        Panel(
            "Night flow (lowest flow in each hour)",
            "timeseries",
            (
                influx(
                    f"""
            SELECT min("flow") FROM "water" WHERE {meters} GROUP BY time(1h), "building" fill(none) tz('{tz}')""",
                    alias="$tag_building",
                ),
            ),
            width=12,
            height=8,
            unit="flowlpm",
            time_from="now-7d",
            thresholds=((None, "green"), (0.5, "red")),
            description="In the small hours a building uses almost no water: a lowest flow that stays above "
            "zero all night means water runs somewhere.",
        ),
        Panel(
            "Leaks found",
            "table",
            (
                sql("""
            SELECT o.number AS "order", o.building AS "building", o.title AS "what", o.status AS "status",
                   o.created_at AS "found", o.resolved_at AS "resolved"
            FROM repair_orders o WHERE o.rule_id = 'night-water-flow' AND $__timeFilter(o.created_at)
            ORDER BY o.created_at DESC"""),
            ),
            width=12,
            height=8,
            time_from="now-90d",
            options=TABLE,
        ),
    )
    return board


def device_health(site: Site) -> Dashboard:
    health = '"gateway" =~ /^$gateway$/ AND "device_kind" =~ /^$kind$/ AND $timeFilter'
    board = Dashboard(
        refs.DEVICE_HEALTH.uid,
        refs.DEVICE_HEALTH.title,
        "Which devices answer, how fast, how often they fail, and whether houqin keeps up (spool, write errors).",
        tags=("devices",),
        time_from="now-6h",
        variables=(
            Variable("gateway", "Gateway", influx('SHOW TAG VALUES FROM "device_health" WITH KEY = "gateway"')),
            Variable("kind", "Kind", influx('SHOW TAG VALUES FROM "device_health" WITH KEY = "device_kind"')),
        ),
    )
    board.row(
        Panel(
            "Devices online",
            "stat",
            (
                influx(
                    f"""
            SELECT count("last") FROM (SELECT last("online") FROM "device_health" WHERE {health}
            GROUP BY "device") WHERE "last" = true""",
                    alias="online",
                ),
            ),
            width=4,
            height=5,
            thresholds=((None, "green"),),
        ),
        Panel(
            "Devices offline",
            "stat",
            (
                influx(
                    f"""
            SELECT count("last") FROM (SELECT last("online") FROM "device_health" WHERE {health}
            GROUP BY "device") WHERE "last" = false""",
                    alias="offline",
                ),
            ),
            width=4,
            height=5,
            thresholds=((None, "green"), (1, "red")),
        ),
        Panel(
            "Spool (readings waiting for InfluxDB)",
            "stat",
            (
                influx(
                    """
            SELECT last("spool_points") FROM "houqin" WHERE $timeFilter GROUP BY "instance" """,
                    alias="$tag_instance",
                ),
            ),
            width=8,
            height=5,
            unit="short",
            thresholds=((None, "green"), (1, "orange")),
            description="Readings kept on disk while InfluxDB could not take them; replayed when it can.",
        ),
        Panel(
            "Write errors and dropped points",
            "timeseries",
            (
                influx("""
            SELECT non_negative_difference(last("write_errors")) AS "write errors",
                   non_negative_difference(last("spool_dropped")) AS "dropped"
            FROM "houqin" WHERE $timeFilter GROUP BY time($__interval) fill(none)"""),
            ),
            width=8,
            height=5,
        ),
    )
    board.row(
        Panel(
            "Devices by gateway",
            "table",
            (
                influx(
                    f"""
            SELECT last("online") AS "online", last("consecutive_failures") AS "failures in a row",
                   last("poll_latency_ms") AS "latency (ms)" FROM "device_health" WHERE {health}
            GROUP BY "gateway", "device_kind", "device" """,
                    table=True,
                ),
            ),
            width=10,
            height=12,
            mappings=ONLINE,
            options=TABLE,
        ),
        Panel(
            "Poll latency by gateway",
            "timeseries",
            (
                influx(
                    f"""
            SELECT mean("poll_latency_ms") FROM "device_health" WHERE {health}
            GROUP BY time($__interval), "gateway" fill(none)""",
                    alias="$tag_gateway",
                ),
            ),
            width=7,
            height=12,
            unit="ms",
        ),
        Panel(
            "Error rate by gateway",
            "timeseries",
            (
                influx(
                    f"""
            SELECT sum("failed") / sum("polls") FROM (SELECT spread("failures_total") AS "failed",
            spread("polls_total") AS "polls" FROM "device_health" WHERE {health}
            GROUP BY time($__interval), "device", "gateway") WHERE $timeFilter
            GROUP BY time($__interval), "gateway" fill(none)""",
                    alias="$tag_gateway",
                ),
            ),
            width=7,
            height=12,
            unit="percentunit",
            description="Failed polls among all polls of the gateway's devices.",
        ),
    )
    return board


def repair_orders(site: Site) -> Dashboard:
    tz = site.tz
    open_states = "status IN (" + ", ".join(f"'{status}'" for status in ACTIVE) + ")"
    board = Dashboard(
        refs.REPAIR_ORDERS.uid,
        refs.REPAIR_ORDERS.title,
        "The repair backlog: what is open, what is overdue, how fast orders are resolved, and by whom.",
        tags=("repairs",),
        time_from="now-30d",
        refresh="5m",
    )
    board.row(
        Panel(
            "Open by category",
            "piechart",
            (
                sql(f"""
            SELECT category AS "metric", count(*) AS "open" FROM repair_orders WHERE {open_states}
            GROUP BY category ORDER BY 2 DESC"""),
            ),
            width=8,
            height=8,
            options={"reduceOptions": {"values": True, "calcs": ["lastNotNull"]}, "pieType": "donut"},
        ),
        Panel(
            "Open by building",
            "bargauge",
            (
                sql(f"""
            SELECT coalesce(building, '(campus)') AS "building", count(*) AS "open" FROM repair_orders
            WHERE {open_states} GROUP BY 1 ORDER BY 2 DESC"""),
            ),
            width=8,
            height=8,
            options={**BARS, "reduceOptions": {"values": True, "calcs": ["lastNotNull"]}},
        ),
        Panel(
            "Overdue",
            "stat",
            (
                sql(f"""
            SELECT count(*) AS "overdue" FROM repair_orders WHERE {open_states} AND due_at < now()"""),
            ),
            width=8,
            height=8,
            thresholds=((None, "green"), (1, "red")),
        ),
    )
    board.row(
        Panel(
            "Overdue orders",
            "table",
            (
                sql(f"""
            SELECT number AS "order", title AS "what", category AS "category", building AS "building",
                   status AS "status", team AS "team", due_at AS "due", now() - due_at AS "late by"
            FROM repair_orders WHERE {open_states} AND due_at < now() ORDER BY due_at"""),
            ),
            width=24,
            height=8,
            options=TABLE,
        ),
    )
    board.row(
        Panel(
            "Hours to resolve, by category",
            "timeseries",
            (
                sql(
                    f"""
            SELECT date_trunc('day', resolved_at AT TIME ZONE '{tz}') AT TIME ZONE '{tz}' AS "time",
                   category AS "metric", avg(extract(epoch FROM resolved_at - created_at) / 3600) AS "hours"
            FROM repair_orders WHERE resolved_at IS NOT NULL AND $__timeFilter(resolved_at)
            GROUP BY 1, 2 ORDER BY 1""",
                    table=False,
                ),
            ),
            width=12,
            height=8,
            unit="h",
        ),
        Panel(
            "Per worker",
            "table",
            (
                sql(f"""
            SELECT u.display_name AS "worker", u.team AS "team",
                   count(*) FILTER (WHERE o.{open_states}) AS "open",
                   count(*) FILTER (WHERE o.resolved_at IS NOT NULL AND $__timeFilter(o.resolved_at)) AS "resolved",
                   avg(extract(epoch FROM o.resolved_at - o.created_at) / 3600)
                       FILTER (WHERE $__timeFilter(o.resolved_at)) AS "hours to resolve"
            FROM repair_orders o JOIN users u ON u.id = o.assignee_id
            GROUP BY u.display_name, u.team ORDER BY 3 DESC, 4 DESC"""),
            ),
            width=12,
            height=8,
            decimals=1,
            options=TABLE,
        ),
    )
    return board


def lighting_broadcast(site: Site) -> Dashboard:
    tz = site.tz
    board = Dashboard(
        refs.LIGHTING_BROADCAST.uid,
        refs.LIGHTING_BROADCAST.title,
        "Zone states, what the scheduler fired or missed, and how the controllers answered commands.",
        tags=("lighting", "broadcast"),
        time_from="now-24h",
    )
    board.row(
        Panel(
            "Zones: last action",
            "table",
            (
                sql("""
            SELECT DISTINCT ON (zone) zone AS "zone", action AS "action", cause AS "by", due_at AS "at",
                   outcome AS "outcome"
            FROM schedule_firings WHERE outcome = 'fired' ORDER BY zone, due_at DESC"""),
            ),
            width=12,
            height=8,
            options=TABLE,
        ),
        Panel(
            "Active overrides",
            "table",
            (
                sql("""
            SELECT zone AS "zone", action AS "state", level AS "level", until AS "until",
                   requested_by AS "by", reason AS "reason"
            FROM zone_overrides WHERE ended_at IS NULL AND starts_at <= now() AND until > now()
            ORDER BY until"""),
            ),
            width=12,
            height=8,
            options=TABLE,
        ),
    )
    board.row(
        Panel(
            "Commands by outcome",
            "timeseries",
            (
                sql(
                    f"""
            SELECT date_trunc('hour', created_at AT TIME ZONE '{tz}') AT TIME ZONE '{tz}' AS "time",
                   state AS "metric", count(*) AS "commands"
            FROM device_commands WHERE $__timeFilter(created_at) GROUP BY 1, 2 ORDER BY 1""",
                    table=False,
                ),
            ),
            width=12,
            height=8,
            stack=True,
            draw="bars",
        ),
        Panel(
            "Failed commands",
            "table",
            (
                sql("""
            SELECT created_at AS "queued", device AS "device", command AS "output", action AS "action",
                   zone AS "zone", attempts AS "attempts", last_error AS "error"
            FROM device_commands WHERE state = 'failed' AND $__timeFilter(created_at)
            ORDER BY created_at DESC"""),
            ),
            width=12,
            height=8,
            options=TABLE,
        ),
    )
    board.row(
        Panel(
            "Dimmable lighting level",
            "timeseries",
            (
                influx(
                    """
            SELECT max("level") FROM "lighting" WHERE $timeFilter GROUP BY time($__interval), "device" fill(none)
            """,
                    alias="$tag_device",
                ),
            ),
            width=12,
            height=8,
            unit="percent",
            description="Level reported by the dimmable (MQTT) lighting controllers.",
        ),
        Panel(
            "Lighting circuits",
            "table",
            (
                influx(
                    """
            SELECT last("circuit1_on") AS "circuit 1", last("circuit2_on") AS "circuit 2",
                   last("circuit3_on") AS "circuit 3", last("circuit4_on") AS "circuit 4"
            FROM "lighting" WHERE $timeFilter GROUP BY "building", "floor", "device" """,
                    table=True,
                ),
            ),
            width=12,
            height=8,
            mappings=ON_OFF,
            options=TABLE,
        ),
        Panel(
            "Broadcast",
            "table",
            (
                influx(
                    """
            SELECT last("playing") AS "playing", last("programme") AS "programme", last("volume") AS "volume"
            FROM "broadcast" WHERE $timeFilter GROUP BY "building", "device" """,
                    table=True,
                ),
            ),
            width=12,
            height=8,
            mappings=ON_OFF,
            options=TABLE,
        ),
    )
    return board


DASHBOARDS: dict[str, Callable[[Site], Dashboard]] = {
    "campus-energy": campus_energy,
    "dorm-electricity": dorm_electricity,
    "water": water,
    "device-health": device_health,
    "repair-orders": repair_orders,
    "lighting-broadcast": lighting_broadcast,
}
