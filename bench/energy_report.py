"""Energy reports and the demo's history: how long the demo campus's first start takes to make its
history (``history_fill_s``, goal ≤ 30 s for 60 days), and how long a month's campus report by building
and sub-item then takes from the embedded store (``demo_month_report_s``).

Not measured here yet: the 10,000-meter, one-year campus in the embedded store and in influxd
(``month_report_s`` and ``embedded_vs_influx``).

    .venv/bin/python bench/energy_report.py [--days 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assembly.cli.demo_history import demo_history  # noqa: E402
from houqin.energy.report import energy_report  # noqa: E402
from houqin.inventory import load_inventory  # noqa: E402
from houqin.settings import Settings  # noqa: E402
from houqin.telemetry.embedded_store import EmbeddedStore  # noqa: E402


async def run(days: int) -> tuple[float, float, int]:
    inventory = load_inventory(ROOT / "devices.yaml")
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="houqin-bench-")), timezone=inventory.site.timezone)
    now = datetime.now(UTC)
    fill = await demo_history(settings, inventory, days, now)
    store = EmbeddedStore(settings.data_dir / "telemetry.sqlite3", settings.telemetry)
    await store.open()
    try:
        month = (now - timedelta(days=days // 2)).astimezone(settings.tz).date()
        started = time.perf_counter()
        report = await energy_report(store, inventory, "month", month, settings.tz, now=now)
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    return fill, seconds, len(report.uses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args()
    fill, report, meters = asyncio.run(run(args.days))
    print(f"demo campus: {args.days} days of history in {fill:.1f} s; a month's report of {meters} meters in "
          f"{report:.2f} s")  # fmt: skip
    print(f"days={args.days} meters={meters} history_fill_s={fill:.1f} demo_month_report_s={report:.2f}")


if __name__ == "__main__":
    main()
