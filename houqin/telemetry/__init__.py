"""Telemetry: where readings are kept and how they are read back (InfluxDB, or an embedded SQLite store)."""

from houqin.telemetry.model import (
    AGGREGATES,
    MEASUREMENTS,
    LatestPoint,
    SeriesPoint,
    SeriesQuery,
    SeriesUnavailable,
    TelemetryStore,
)

__all__ = [
    "AGGREGATES",
    "MEASUREMENTS",
    "LatestPoint",
    "SeriesPoint",
    "SeriesQuery",
    "SeriesUnavailable",
    "TelemetryStore",
]
