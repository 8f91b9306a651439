"""A small builder for Grafana dashboard JSON: panels placed on the 24-column grid in reading order, data
source references by uid, template variables. Only the parts of the dashboard model houqin's dashboards
use; what it writes is what Grafana's own editor saves for schema version ``SCHEMA_VERSION``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 39  # Grafana 11.0; newer versions migrate it on load
GRID_COLUMNS = 24

INFLUX_UID = "houqin-influxdb"
POSTGRES_UID = "houqin-postgres"
INFLUX = {"type": "influxdb", "uid": INFLUX_UID}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": POSTGRES_UID}

PanelType = Literal["stat", "timeseries", "table", "bargauge", "barchart", "piechart", "text"]


@dataclass(frozen=True)
class Query:
    """One target of a panel: raw InfluxQL, or SQL for PostgreSQL."""

    text: str
    source: Literal["influxdb", "postgres"] = "influxdb"
    table: bool = False  # a table rather than time series
    alias: str | None = None  # InfluxQL legend, e.g. "$tag_building"

    @property
    def datasource(self) -> dict[str, str]:
        return INFLUX if self.source == "influxdb" else POSTGRES

    def target(self, ref_id: str) -> dict[str, Any]:
        if self.source == "influxdb":
            target: dict[str, Any] = {
                "datasource": self.datasource,
                "refId": ref_id,
                "rawQuery": True,
                "query": self.text,
                "resultFormat": "table" if self.table else "time_series",
            }
            if self.alias:
                target["alias"] = self.alias
            return target
        return {
            "datasource": self.datasource,
            "refId": ref_id,
            "editorMode": "code",
            "rawQuery": True,
            "rawSql": self.text,
            "format": "table" if self.table else "time_series",
        }


def influx(text: str, alias: str | None = None, table: bool = False) -> Query:
    return Query(" ".join(text.split()), "influxdb", table, alias)


def sql(text: str, table: bool = True) -> Query:
    return Query(" ".join(text.split()), "postgres", table)


# Time-series settings that live in fieldConfig.defaults.custom: given as panel options they do nothing.
FIELD_CONFIG_KEYS = frozenset({"drawStyle", "lineWidth", "fillOpacity", "stacking", "barAlignment", "showPoints"})


@dataclass(frozen=True)
class Panel:
    title: str
    type: PanelType
    queries: tuple[Query, ...] = ()
    width: int = 12
    height: int = 8
    unit: str | None = None
    description: str = ""
    decimals: int | None = None
    time_from: str | None = None  # a panel-level range, e.g. "now/d" for today so far
    thresholds: tuple[tuple[float | None, str], ...] = ((None, "green"),)
    mappings: tuple[dict[str, Any], ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    stack: bool = False
    # How a time series draws: Grafana reads it from the field config (fieldConfig.defaults.custom), not
    # from the panel's options, where it would be silently ignored.
    draw: Literal["line", "bars", "points"] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.width <= GRID_COLUMNS:
            raise ValueError(f"panel {self.title!r}: width must be 1..{GRID_COLUMNS}")
        sources = {query.source for query in self.queries}
        if len(sources) > 1:
            raise ValueError(f"panel {self.title!r}: one data source per panel")
        misplaced = sorted(set(self.options) & FIELD_CONFIG_KEYS)
        if misplaced:
            raise ValueError(f"panel {self.title!r}: {', '.join(misplaced)} belongs in the field config, not the "
                             "panel's options (Grafana ignores it there): use draw= or stack=")  # fmt: skip
        if self.draw is not None and self.type != "timeseries":
            raise ValueError(f"panel {self.title!r}: draw= is a time series' setting, not a {self.type}'s")

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": color, "value": value} for value, color in self.thresholds],
            },
        }
        if self.unit:
            defaults["unit"] = self.unit
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        if self.mappings:
            defaults["mappings"] = list(self.mappings)
        custom: dict[str, Any] = {}
        if self.stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        if self.draw is not None:
            custom["drawStyle"] = self.draw
        if custom:
            defaults["custom"] = custom
        panel: dict[str, Any] = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": self.height},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self.options,
        }
        if self.description:
            panel["description"] = self.description
        if self.queries:
            panel["datasource"] = self.queries[0].datasource
            panel["targets"] = [query.target(chr(ord("A") + index)) for index, query in enumerate(self.queries)]
        if self.time_from:
            panel["timeFrom"] = self.time_from
        return panel


@dataclass(frozen=True)
class Variable:
    """A query variable: its values from InfluxDB tag values or a SQL query; several may be picked."""

    name: str
    label: str
    query: Query
    multi: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "datasource": self.query.datasource,
            "query": self.query.text,
            "refresh": 2,  # on time range change: a new room shows up without a reload
            "multi": self.multi,
            "includeAll": self.multi,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if self.multi else {},
            "sort": 3,  # natural order: D1-2 before D1-10
            "options": [],
            "hide": 0,
        }


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    tags: tuple[str, ...] = ()
    variables: tuple[Variable, ...] = ()
    time_from: str = "now-24h"
    refresh: str = "1m"
    rows: list[tuple[Panel, ...]] = field(default_factory=list)

    def row(self, *panels: Panel) -> Dashboard:
        """Panels side by side; a row wider than the grid wraps."""
        self.rows.append(panels)
        return self

    def to_json(self) -> dict[str, Any]:
        placed: list[dict[str, Any]] = []
        y = 0
        panel_id = 1
        for row in self.rows:
            x = 0
            row_height = 0
            for panel in row:
                if x + panel.width > GRID_COLUMNS:
                    x, y = 0, y + row_height
                    row_height = 0
                placed.append(panel.to_json(panel_id, x, y))
                panel_id += 1
                x += panel.width
                row_height = max(row_height, panel.height)
            y += row_height
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["houqin", *self.tags],
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,  # shared crosshair
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": self.time_from, "to": "now"},
            "refresh": self.refresh,
            "templating": {"list": [variable.to_json() for variable in self.variables]},
            "annotations": {"list": []},
            "links": [{"type": "dashboards", "tags": ["houqin"], "asDropdown": True, "title": "houqin"}],
            "panels": placed,
        }
