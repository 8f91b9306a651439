"""Lighting and broadcast schedules, the school calendar, and the scheduler that fires them."""

from pathlib import Path

# The demo campus's calendar and schedules (``houqin demo`` imports them at its start).
DEMO_FILES = Path(__file__).parent / "demo"
